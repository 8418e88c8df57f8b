/* kat_adam: check fastopt's known-answer vectors in plain C, without Python.
 *
 *     cc -std=c99 -O2 -ffp-contract=off -o kat_adam kat_adam.c -lm
 *     ./kat_adam DIR [-v]
 *
 * DIR holds what `python -m fastopt vectors` writes (docs/contract.md §11). This program reads
 * DIR/index.txt (one "key value" per line), loads every array of every case from its raw
 * little-endian file DIR/<case>/<array>.bin (checking each file's size against the case's
 * shapes), then replays
 * the case: Adam and AdamW with all their options (the contract's Adam, the point of this
 * program), and the other rules too (kat_rules.h), in float32 and float64, and compares the
 * parameter and every state array after every step with the expected ones, bit for bit (two
 * NaNs match whatever their payloads; the sign of zero counts).
 *
 * Exit status: 0 when every case matches, 1 on a mismatch (the first one of each case is
 * printed with both values in hex), 2 when a file is missing or malformed.
 * Assumes a little-endian machine, IEEE 754 float/double and FLT_EVAL_METHOD == 0 (x86-64
 * SSE2, aarch64), as the contract does (§1).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "float arithmetic must stay in float (FLT_EVAL_METHOD == 0), as docs/contract.md §1 assumes"
#endif

enum rule { RULE_SGD, RULE_MOMENTUM, RULE_RMSPROP, RULE_ADAM, RULE_ADAMW, RULE_ADAGRAD };
static const char *const RULE_NAMES[] = {"SGD", "Momentum", "RMSProp", "Adam", "AdamW",
                                         "Adagrad"};
#define N_RULES 6

enum state_slot { SLOT_M, SLOT_V, SLOT_V_MAX, SLOT_VELOCITY, SLOT_SQ_AVG, SLOT_GRAD_AVG,
                  SLOT_MOMENTUM_BUFFER, SLOT_SUM_SQ, N_SLOTS };
static const char *const SLOT_NAMES[] = {"m", "v", "v_max", "velocity", "sq_avg", "grad_avg",
                                         "momentum_buffer", "sum_sq"};

enum nonfinite { NF_PROPAGATE, NF_SKIP, NF_RAISE };

/* Every hyperparameter of every rule; each case sets those of its rule. */
struct hyper {
    enum rule rule;
    double beta, beta1, beta2, eps, weight_decay, momentum, dampening, lr_decay;
    double max_grad_norm;     /* < 0: no clipping */
    int maximize, nesterov, amsgrad, centered;
    enum nonfinite nonfinite;
};

#define KAT_T float
#define KAT_SQRT sqrtf
#define KAT_FN(name) name##_f32
#include "kat_rules.h"
#undef KAT_T
#undef KAT_SQRT
#undef KAT_FN
#define KAT_T double
#define KAT_SQRT sqrt
#define KAT_FN(name) name##_f64
#include "kat_rules.h"
#undef KAT_T
#undef KAT_SQRT
#undef KAT_FN

#define MAX_ARRAYS 24
struct kase {
    char name[256], dtype[16];
    struct hyper h;
    long size, steps, start_step;
    int narrays;
    char array_name[MAX_ARRAYS][64];
};

static const char *dir;
static int verbose;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "kat_adam: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

/* The whole file DIR/rel, which must hold exactly `bytes` bytes. */
static void *load(const char *rel, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    fseek(f, 0, SEEK_END);
    long got = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (got < 0 || (size_t)got != bytes) {
        fprintf(stderr, "kat_adam: %s holds %ld bytes; expected %zu\n", path, got, bytes);
        exit(2);
    }
    void *data = malloc(bytes ? bytes : 1);
    if (!data)
        die("out of memory reading", path);
    if (bytes && fread(data, 1, bytes, f) != bytes)
        die("cannot read", path);
    fclose(f);
    return data;
}

/* The file of array `name` of case c, relative to DIR (valid until the next call), or NULL
 * when the case has no such array. */
static const char *find_array(const struct kase *c, const char *name)
{
    static char rel[512];
    for (int i = 0; i < c->narrays; i++)
        if (strcmp(c->array_name[i], name) == 0) {
            snprintf(rel, sizeof rel, "%s/%s.bin", c->name, name);
            return rel;
        }
    return NULL;
}

static double number(const char *value, const char *key)
{
    if (strcmp(value, "none") == 0)
        return -1.0;
    char *end;
    double x = strtod(value, &end);  /* Python's repr: strtod gives back the same double */
    if (end == value || *end)
        die("bad number for", key);
    return x;
}

static void set_hyper(struct hyper *h, const char *key, const char *value)
{
    if (!strcmp(key, "beta")) h->beta = number(value, key);
    else if (!strcmp(key, "beta1")) h->beta1 = number(value, key);
    else if (!strcmp(key, "beta2")) h->beta2 = number(value, key);
    else if (!strcmp(key, "eps")) h->eps = number(value, key);
    else if (!strcmp(key, "weight_decay")) h->weight_decay = number(value, key);
    else if (!strcmp(key, "momentum")) h->momentum = number(value, key);
    else if (!strcmp(key, "dampening")) h->dampening = number(value, key);
    else if (!strcmp(key, "lr_decay")) h->lr_decay = number(value, key);
    else if (!strcmp(key, "max_grad_norm")) h->max_grad_norm = number(value, key);
    else if (!strcmp(key, "maximize")) h->maximize = atoi(value);
    else if (!strcmp(key, "nesterov")) h->nesterov = atoi(value);
    else if (!strcmp(key, "amsgrad")) h->amsgrad = atoi(value);
    else if (!strcmp(key, "centered")) h->centered = atoi(value);
    else if (!strcmp(key, "initial_accumulator_value")) (void)0;  /* in the initial state */
    else if (!strcmp(key, "nonfinite"))
        h->nonfinite = !strcmp(value, "skip") ? NF_SKIP
                     : !strcmp(value, "raise") ? NF_RAISE : NF_PROPAGATE;
    else
        die("unknown hyperparameter", key);
}

static int same_bits(const void *a, const void *b, long i, int f32)
{
    if (f32) {
        float x = ((const float *)a)[i], y = ((const float *)b)[i];
        return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
    }
    double x = ((const double *)a)[i], y = ((const double *)b)[i];
    return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
}

static void show(const char *label, const void *a, long i, int f32)
{
    if (f32) {
        float x = ((const float *)a)[i];
        uint32_t u;
        memcpy(&u, &x, sizeof u);
        fprintf(stderr, "  %s %.9g (0x%08x)\n", label, (double)x, (unsigned)u);
    } else {
        double x = ((const double *)a)[i];
        uint64_t u;
        memcpy(&u, &x, sizeof u);
        fprintf(stderr, "  %s %.17g (0x%016llx)\n", label, x, (unsigned long long)u);
    }
}

/* Compare n elements; report the first mismatch. Returns 1 when they match. */
static int compare(const struct kase *c, long step, const char *what, const void *got,
                   const void *want, long n, int f32)
{
    for (long i = 0; i < n; i++)
        if (!same_bits(got, want, i, f32)) {
            fprintf(stderr, "MISMATCH %s: step %ld (t=%ld), %s[%ld]\n", c->name, step,
                    c->start_step + step, what, i);
            show("C       ", got, i, f32);
            show("expected", want, i, f32);
            return 0;
        }
    return 1;
}

/* Replay one case; returns 1 when every step matches. */
static int run_case(const struct kase *c)
{
    const int f32 = strcmp(c->dtype, "float32") == 0;
    if (!f32 && strcmp(c->dtype, "float64") != 0)
        die("unknown dtype", c->dtype);
    const size_t item = f32 ? sizeof(float) : sizeof(double);
    const long n = c->size, k = c->steps;
    const char *path;
#define NEED(name) ((path = find_array(c, name)) ? path : (die("case lacks array", name), ""))
    int64_t *steps = load(NEED("steps"), (size_t)k * sizeof(int64_t));
    double *lr = load(NEED("lr"), (size_t)k * sizeof(double));
    char *p = load(NEED("param"), (size_t)n * item);
    char *grads = load(NEED("grads"), (size_t)(k * n) * item);
    char *want_p = load(NEED("expected_param"), (size_t)(k * n) * item);
    void *state[N_SLOTS] = {0}, *want_state[N_SLOTS] = {0};
    char key[96];
    for (int s = 0; s < N_SLOTS; s++) {
        snprintf(key, sizeof key, "state.%s", SLOT_NAMES[s]);
        if (!(path = find_array(c, key)))
            continue;
        state[s] = load(path, (size_t)n * item);
        snprintf(key, sizeof key, "expected_state.%s", SLOT_NAMES[s]);
        want_state[s] = load(NEED(key), (size_t)(k * n) * item);
    }
    int ok = 1;
    long t = c->start_step - 1;
    for (long i = 0; i < k && ok; i++) {
        const char *g = grads + (size_t)(i * n) * item;
        int finite = f32 ? all_finite_f32((const float *)g, n)
                         : all_finite_f64((const double *)g, n);
        double scale = 1.0;
        if (c->h.max_grad_norm >= 0.0) {
            /* fastopt._clip.global_norm over one array, then clip_coefficient */
            double total = 0.0 + (f32 ? sumsq_f32((const float *)g, n)
                                      : sumsq_f64((const double *)g, n));
            double coef = c->h.max_grad_norm / (sqrt(total) + 1e-6);
            scale = coef < 1.0 ? coef : 1.0;
        }
        if (finite || c->h.nonfinite == NF_PROPAGATE) {  /* else skipped (or raised) */
            t += 1;
            if (f32)
                step_f32(&c->h, t, lr[i], scale, (float *)p, (const float *)g,
                         (float **)state, n);
            else
                step_f64(&c->h, t, lr[i], scale, (double *)p, (const double *)g,
                         (double **)state, n);
        }
        if (t != steps[i]) {
            fprintf(stderr, "MISMATCH %s: step %ld: the step count is %ld here, %lld in the "
                    "vectors\n", c->name, i, t, (long long)steps[i]);
            ok = 0;
            break;
        }
        ok = compare(c, i, "param", p, want_p + (size_t)(i * n) * item, n, f32);
        for (int s = 0; s < N_SLOTS && ok; s++)
            if (state[s])
                ok = compare(c, i, SLOT_NAMES[s], state[s],
                             (char *)want_state[s] + (size_t)(i * n) * item, n, f32);
    }
#undef NEED
    free(steps); free(lr); free(p); free(grads); free(want_p);
    for (int s = 0; s < N_SLOTS; s++) {
        free(state[s]);
        free(want_state[s]);
    }
    if (verbose)
        printf("%s %s\n", ok ? "ok" : "FAIL", c->name);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "-v") != 0)) {
        fprintf(stderr, "usage: %s DIR [-v]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    verbose = argc == 3;
    char path[1024], line[1200], key[64], value[1100];
    snprintf(path, sizeof path, "%s/index.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open", path);
    long format = -1, declared = -1, cases = 0, failed = 0, steps = 0;
    long per_rule[N_RULES] = {0}, per_dtype[2] = {0};
    struct kase c;
    int in_case = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        value[0] = '\0';
        if (sscanf(line, "%63s %1099[^\n]", key, value) < 1)
            continue;
        if (!strcmp(key, "format")) {
            format = atol(value);
            if (format != 1)
                die("this program reads index format 1, got", value);
        } else if (!strcmp(key, "contract") || !strcmp(key, "offset")) {
            /* informative here: the contract version, and how the arrays were aligned */
        } else if (!strcmp(key, "cases")) {
            declared = atol(value);
        } else if (!strcmp(key, "case")) {
            memset(&c, 0, sizeof c);
            c.h.max_grad_norm = -1.0;
            snprintf(c.name, sizeof c.name, "%s", value);
            in_case = 1;
        } else if (!in_case) {
            die("a key before the first case", key);
        } else if (!strcmp(key, "rule")) {
            int r = 0;
            while (r < N_RULES && strcmp(RULE_NAMES[r], value) != 0)
                r++;
            if (r == N_RULES)
                die("unknown rule", value);
            c.h.rule = (enum rule)r;
        } else if (!strcmp(key, "dtype")) {
            snprintf(c.dtype, sizeof c.dtype, "%s", value);
        } else if (!strcmp(key, "size")) {
            c.size = atol(value);
        } else if (!strcmp(key, "steps")) {
            c.steps = atol(value);
        } else if (!strcmp(key, "start_step")) {
            c.start_step = atol(value);
        } else if (!strcmp(key, "hyper")) {
            char hk[64], hv[64];
            if (sscanf(value, "%63s %63s", hk, hv) != 2)
                die("bad hyper line", value);
            set_hyper(&c.h, hk, hv);
        } else if (!strcmp(key, "arrays")) {
            /* array names; the files are <case>/<name>.bin */
            for (char *tok = strtok(value, " "); tok; tok = strtok(NULL, " ")) {
                if (c.narrays == MAX_ARRAYS)
                    die("too many arrays in case", c.name);
                snprintf(c.array_name[c.narrays], sizeof c.array_name[0], "%s", tok);
                c.narrays++;
            }
        } else if (!strcmp(key, "end")) {
            int ok = run_case(&c);
            cases++;
            failed += !ok;
            steps += c.steps;
            per_rule[c.h.rule]++;
            per_dtype[strcmp(c.dtype, "float32") != 0]++;
            in_case = 0;
        } else {
            die("unknown key", key);
        }
    }
    fclose(f);
    if (format != 1)
        die("no format line in", path);
    if (declared != cases) {
        fprintf(stderr, "kat_adam: index.txt declares %ld cases and holds %ld\n", declared,
                cases);
        return 2;
    }
    printf("kat_adam: %ld cases (%ld float32, %ld float64; %ld steps) replayed in C:",
           cases, per_dtype[0], per_dtype[1], steps);
    for (int r = 0; r < N_RULES; r++)
        printf(" %s %ld%s", RULE_NAMES[r], per_rule[r], r + 1 < N_RULES ? "," : ";");
    printf(" %ld bit-identical, %ld mismatched\n", cases - failed, failed);
    return failed ? 1 : 0;
}
