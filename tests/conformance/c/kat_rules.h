/* One optimizer step of every rule, in plain C, for one element type.
 *
 * Included twice by kat_adam.c: with KAT_T float, KAT_SQRT sqrtf and KAT_FN(x) x##_f32, then
 * with double, sqrt and x##_f64. Each line is the NumPy reference's expression
 * (fastopt/reference/_ops.py, docs/contract.md §2 and §7) operand for operand: the scalars
 * arrive as doubles, computed as Python computes them, and are rounded once to KAT_T here;
 * every array operation is in KAT_T. Compiled with -ffp-contract=off (no fused multiply-add)
 * and without -ffast-math, so each + - * / sqrt is one correctly rounded IEEE operation.
 */

/* The clipping sum's block, in items: fastopt.reference._ops.SUMSQ_BLOCK (and the kernels'
 * SUMSQ_BLOCK, fastopt/_pxi/clipping.pxi). A C program cannot import it, so
 * tests/kernels/test_build.py reads this line and holds the three equal. */
#ifndef KAT_SUMSQ_BLOCK
#define KAT_SUMSQ_BLOCK 1024
#endif

/* sum of x*x in float64 in the kernels' fixed order (docs/contract.md §8): blocks of
 * KAT_SUMSQ_BLOCK items, each summed by eight interleaved lanes combined pairwise, then the
 * blocks in order. */
static double KAT_FN(sumsq)(const KAT_T *x, long n)
{
    double total = 0.0;
    for (long b = 0; b < n; b += KAT_SUMSQ_BLOCK) {
        double lane[8];
        for (int j = 0; j < 8; j++) {
            long i = b + j;
            lane[j] = i < n ? (double)x[i] * (double)x[i] : 0.0;
        }
        for (long k = 1; k < KAT_SUMSQ_BLOCK / 8; k++)
            for (int j = 0; j < 8; j++) {
                long i = b + 8 * k + j;
                lane[j] += i < n ? (double)x[i] * (double)x[i] : 0.0;
            }
        double s = ((lane[0] + lane[1]) + (lane[2] + lane[3]))
                   + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        total = b == 0 ? s : total + s;
    }
    return total;
}

static int KAT_FN(all_finite)(const KAT_T *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* The gradient as a rule uses it: scaled by the clipping coefficient, negated to maximize,
 * then with L2 weight decay (reference _ops._gradient). */
static KAT_T KAT_FN(gradient)(KAT_T g, KAT_T p, const struct hyper *h, double scale,
                              double weight_decay)
{
    if (scale != 1.0)
        g = g * (KAT_T)scale;
    if (h->maximize)
        g = -g;
    if (weight_decay != 0.0)
        g = g + (KAT_T)weight_decay * p;
    return g;
}

/* One step of rule h->rule at step count t (this step included) with learning rate lr;
 * s[] holds the state arrays in the order of enum state_slot (NULL when absent). */
static void KAT_FN(step)(const struct hyper *h, long t, double lr, double scale, KAT_T *p,
                         const KAT_T *grad, KAT_T **s, long n)
{
    const KAT_T lr_ = (KAT_T)lr;
    switch (h->rule) {
    case RULE_SGD: {
        const KAT_T mom = (KAT_T)h->momentum, damp1 = (KAT_T)(1.0 - h->dampening);
        KAT_T *buf = s[SLOT_MOMENTUM_BUFFER];
        for (long i = 0; i < n; i++) {
            KAT_T g = KAT_FN(gradient)(grad[i], p[i], h, scale, h->weight_decay);
            if (!buf) {
                p[i] = p[i] - lr_ * g;
                continue;
            }
            buf[i] = t == 1 ? g : mom * buf[i] + damp1 * g;
            p[i] = h->nesterov ? p[i] - lr_ * (g + mom * buf[i]) : p[i] - lr_ * buf[i];
        }
        break;
    }
    case RULE_MOMENTUM: {
        const KAT_T beta = (KAT_T)h->beta, beta1m = (KAT_T)(1.0 - h->beta);
        KAT_T *v = s[SLOT_VELOCITY];
        for (long i = 0; i < n; i++) {
            KAT_T g = KAT_FN(gradient)(grad[i], p[i], h, scale, h->weight_decay);
            v[i] = beta * v[i] + beta1m * g;
            p[i] = h->nesterov ? p[i] - lr_ * (beta * v[i] + beta1m * g) : p[i] - lr_ * v[i];
        }
        break;
    }
    case RULE_RMSPROP: {
        const KAT_T beta = (KAT_T)h->beta, beta1m = (KAT_T)(1.0 - h->beta);
        const KAT_T eps = (KAT_T)h->eps, mom = (KAT_T)h->momentum;
        KAT_T *sq = s[SLOT_SQ_AVG], *ga = s[SLOT_GRAD_AVG], *buf = s[SLOT_MOMENTUM_BUFFER];
        for (long i = 0; i < n; i++) {
            KAT_T g = KAT_FN(gradient)(grad[i], p[i], h, scale, h->weight_decay);
            KAT_T denom;
            sq[i] = beta * sq[i] + beta1m * (g * g);
            if (ga) {
                ga[i] = beta * ga[i] + beta1m * g;
                denom = KAT_SQRT(sq[i] - ga[i] * ga[i]) + eps;
            } else {
                denom = KAT_SQRT(sq[i]) + eps;
            }
            if (buf) {
                buf[i] = mom * buf[i] + g / denom;
                p[i] = p[i] - lr_ * buf[i];
            } else {
                p[i] = p[i] - (lr_ * g) / denom;
            }
        }
        break;
    }
    case RULE_ADAM:
    case RULE_ADAMW: {
        /* docs/contract.md §2: bias1 = 1 - beta1**t with C pow on doubles, as Python's
         * float.__pow__; AdamW decays p by (1 - lr*wd) before the moments instead of adding
         * wd*p to the gradient. */
        const int decoupled = h->rule == RULE_ADAMW;
        const KAT_T beta1 = (KAT_T)h->beta1, beta1m = (KAT_T)(1.0 - h->beta1);
        const KAT_T beta2 = (KAT_T)h->beta2, beta2m = (KAT_T)(1.0 - h->beta2);
        const KAT_T bias1 = (KAT_T)(1.0 - pow(h->beta1, (double)t));
        const KAT_T bias2 = (KAT_T)(1.0 - pow(h->beta2, (double)t));
        const KAT_T eps = (KAT_T)h->eps, decay = (KAT_T)(1.0 - lr * h->weight_decay);
        KAT_T *m = s[SLOT_M], *v = s[SLOT_V], *vmax = s[SLOT_V_MAX];
        for (long i = 0; i < n; i++) {
            KAT_T g = KAT_FN(gradient)(grad[i], p[i], h, scale,
                                       decoupled ? 0.0 : h->weight_decay);
            if (decoupled && h->weight_decay != 0.0)
                p[i] = p[i] * decay;
            m[i] = beta1 * m[i] + beta1m * g;
            KAT_T m_hat = m[i] / bias1;
            v[i] = beta2 * v[i] + beta2m * (g * g);
            KAT_T v_hat;
            if (vmax) {
                if (v[i] > vmax[i] || isnan(v[i]))  /* the larger; NaN wins; a tie keeps v_max */
                    vmax[i] = v[i];
                v_hat = vmax[i] / bias2;
            } else {
                v_hat = v[i] / bias2;
            }
            p[i] = p[i] - (lr_ * m_hat) / (KAT_SQRT(v_hat) + eps);
        }
        break;
    }
    case RULE_ADAGRAD: {
        /* clr = lr / (1 + (t-1)*lr_decay), a scalar computed in double */
        const KAT_T clr = (KAT_T)(lr / (1.0 + (double)(t - 1) * h->lr_decay));
        const KAT_T eps = (KAT_T)h->eps;
        KAT_T *sum = s[SLOT_SUM_SQ];
        for (long i = 0; i < n; i++) {
            KAT_T g = KAT_FN(gradient)(grad[i], p[i], h, scale, h->weight_decay);
            sum[i] = sum[i] + g * g;
            p[i] = p[i] - (clr * g) / (KAT_SQRT(sum[i]) + eps);
        }
        break;
    }
    }
}
