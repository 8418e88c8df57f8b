/* The two designs of fastopt/_pxi/mixed.pxi's 16-bit Adam step, in plain C with the kernels'
   loop bodies (bfloat16, t = 1000: the second bias division only, as fastopt's _Second loop):
   float32 Adam; (a) one loop that widens the gradient and writes the rounded copy; (b) per
   chunk of 1024/2048/4096 items, widen into a stack buffer, the float32 loop, round the chunk.

       gcc -O3 -mavx2 -mfma -ffp-contract=off -fno-math-errno benchmarks/tools/ab_mixed_design.c \
           -o /tmp/ab_mixed_design -lm && /tmp/ab_mixed_design

   Prints the best of 7 rounds per size (us per step) and the ratios (b)/(a), (b)/float32. */
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
typedef long Py_ssize_t;
static inline float wbf(uint16_t h){uint32_t r=(uint32_t)h<<16;float f;memcpy(&f,&r,4);return f;}
static inline uint16_t nbf(float x){uint32_t u;memcpy(&u,&x,4);uint32_t r=(u+0x7FFFu+((u>>16)&1u))>>16;
  return (uint16_t)((u&0x7FFFFFFFu)>0x7F800000u?(((u>>16)&0x8000u)|0x7FC0u):r);}
typedef struct {float lr,b1,c1,b2,c2,d2,e;} A;
__attribute__((noinline)) void adam32(const A*a,float*p,const float*g,float*m,float*v,Py_ssize_t n){
  float lr=a->lr,b1=a->b1,c1=a->c1,b2=a->b2,c2=a->c2,d2=a->d2,e=a->e;
  for(Py_ssize_t i=0;i<n;i++){float gi=g[i],pi=p[i];float mi=b1*m[i]+c1*gi;m[i]=mi;float vi=b2*v[i]+c2*(gi*gi);v[i]=vi;vi=vi/d2;p[i]=pi-(lr*mi)/(sqrtf(vi)+e);}}
__attribute__((noinline)) void adam_a(const A*a,float*p,const uint16_t*g,float*m,float*v,uint16_t*q,Py_ssize_t n){
  float lr=a->lr,b1=a->b1,c1=a->c1,b2=a->b2,c2=a->c2,d2=a->d2,e=a->e;
  for(Py_ssize_t i=0;i<n;i++){float gi=wbf(g[i]),pi=p[i];float mi=b1*m[i]+c1*gi;m[i]=mi;float vi=b2*v[i]+c2*(gi*gi);v[i]=vi;vi=vi/d2;pi=pi-(lr*mi)/(sqrtf(vi)+e);p[i]=pi;q[i]=nbf(pi);}}
__attribute__((noinline)) void widen(const uint16_t*restrict h,float*restrict o,Py_ssize_t n){for(Py_ssize_t i=0;i<n;i++)o[i]=wbf(h[i]);}
__attribute__((noinline)) void narrow(const float*restrict x,uint16_t*restrict o,Py_ssize_t n){for(Py_ssize_t i=0;i<n;i++)o[i]=nbf(x[i]);}
void adam_b(const A*a,float*p,const uint16_t*g,float*m,float*v,uint16_t*q,Py_ssize_t n,Py_ssize_t C){
  float buf[4096];
  for(Py_ssize_t c=0;c<n;c+=C){Py_ssize_t k=n-c<C?n-c:C;widen(g+c,buf,k);adam32(a,p+c,buf,m+c,v+c,k);narrow(p+c,q+c,k);}}
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(){
  A a={1e-3f,0.9f,0.1f,0.999f,0.001f,(float)(1-pow(0.999,1000)),1e-8f};
  Py_ssize_t sizes[]={100000,1000000,10000000};
  for(int s=0;s<3;s++){Py_ssize_t n=sizes[s];
    float*p=malloc(n*4),*g=malloc(n*4),*m=calloc(n,4),*v=calloc(n,4);uint16_t*g16=malloc(n*2),*q=malloc(n*2);
    for(Py_ssize_t i=0;i<n;i++){p[i]=(float)rand()/RAND_MAX-0.5f;g[i]=((float)rand()/RAND_MAX-0.5f)*1e-3f;g16[i]=nbf(g[i]);}
    int reps=n>=10000000?10:(n>=1000000?50:500);
    double best[5]={1e9,1e9,1e9,1e9,1e9};
    for(int r=0;r<7;r++){double t0;
      t0=now();for(int k=0;k<reps;k++)adam32(&a,p,g,m,v,n);double x=(now()-t0)/reps;if(x<best[0])best[0]=x;
      t0=now();for(int k=0;k<reps;k++)adam_a(&a,p,g16,m,v,q,n);x=(now()-t0)/reps;if(x<best[1])best[1]=x;
      t0=now();for(int k=0;k<reps;k++)adam_b(&a,p,g16,m,v,q,n,1024);x=(now()-t0)/reps;if(x<best[2])best[2]=x;
      t0=now();for(int k=0;k<reps;k++)adam_b(&a,p,g16,m,v,q,n,2048);x=(now()-t0)/reps;if(x<best[3])best[3]=x;
      t0=now();for(int k=0;k<reps;k++)adam_b(&a,p,g16,m,v,q,n,4096);x=(now()-t0)/reps;if(x<best[4])best[4]=x;}
    printf("n=%.0e f32 %.1f us | (a) fused %.1f | (b) 1024 %.1f 2048 %.1f 4096 %.1f  | (b2048)/(a) %.2f  (b2048)/f32 %.2f\n",(double)n,best[0]*1e6,best[1]*1e6,best[2]*1e6,best[3]*1e6,best[4]*1e6,best[3]/best[1],best[3]/best[0]);
    free(p);free(g);free(m);free(v);free(g16);free(q);}
}
