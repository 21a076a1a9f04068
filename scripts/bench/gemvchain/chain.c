// The decode GEMV chain of an 8B checkpoint without Go: the bf16 pair
// kernel of kernels/half.c (four rows per step, activations split into
// even/odd halves, the 2.5 KiB prefetch) run with two pthreads (64-row pieces, dynamic) over the
// decoder's matrices in decode order, straight from the mapped shards, as
// one decode step reads them. Prints ms and GB/s per pass. The matrix list
// (file, byte offset, rows, cols) comes from gemvchain.sh.
// Build: cc -O3 -march=native -pthread chain.c (AVX-512 only).
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <stdatomic.h>
// PF: the prefetch distance of half.c's PAIR_PREFETCH (environment PF
// overrides it; PF=0 still issues the prefetches, of the line being read).
static long PF=2560;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void k_pairs4(const float *xp,const uint16_t *w,long k,float *y,long o0,long o1){
  const __m512i mask=_mm512_set1_epi32((int)0xffff0000u);
  for(long o=o0;o+4<=o1;o+=4){const uint16_t*w0=w+o*k,*w1=w0+k,*w2=w1+k,*w3=w2+k;
    __m512 a0=_mm512_setzero_ps(),a1=a0,a2=a0,a3=a0,b0=a0,b1=a0,b2=a0,b3=a0;
    for(long i=0;i+32<=k;i+=32){__m512 xe=_mm512_loadu_ps(xp+i),xo=_mm512_loadu_ps(xp+i+16);
      _mm_prefetch((const char*)(w0+i)+PF,_MM_HINT_T1);_mm_prefetch((const char*)(w1+i)+PF,_MM_HINT_T1);_mm_prefetch((const char*)(w2+i)+PF,_MM_HINT_T1);_mm_prefetch((const char*)(w3+i)+PF,_MM_HINT_T1);
      __m512i v0=_mm512_loadu_si512(w0+i),v1=_mm512_loadu_si512(w1+i),v2=_mm512_loadu_si512(w2+i),v3=_mm512_loadu_si512(w3+i);
      a0=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v0,16)),xe,a0);b0=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v0,mask)),xo,b0);
      a1=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v1,16)),xe,a1);b1=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v1,mask)),xo,b1);
      a2=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v2,16)),xe,a2);b2=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v2,mask)),xo,b2);
      a3=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v3,16)),xe,a3);b3=_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v3,mask)),xo,b3);}
    y[o]=_mm512_reduce_add_ps(a0+b0);y[o+1]=_mm512_reduce_add_ps(a1+b1);y[o+2]=_mm512_reduce_add_ps(a2+b2);y[o+3]=_mm512_reduce_add_ps(a3+b3);}
}
struct job{const float*x;const uint16_t*w;long k,out;float*y;atomic_long next;long chunk;};
static void *worker(void*a){struct job*j=a;for(;;){long lo=atomic_fetch_add(&j->next,j->chunk);if(lo>=j->out)break;long hi=lo+j->chunk;if(hi>j->out)hi=j->out;k_pairs4(j->x,j->w,j->k,j->y,lo,hi);}return 0;}
int main(int argc,char**argv){
  if(argc<4){fprintf(stderr,"usage: chain REPS CKPT LIST\n");return 2;}
  int reps=atoi(argv[1]); const char*dir=argv[2]; if(getenv("PF"))PF=atol(getenv("PF"));
  long off[256],rows[256],cols[256]; int fi[256]; int nm=0,nf=0; char fn[128];
  FILE*c=fopen(argv[3],"r"); if(!c){perror(argv[3]);return 1;} char files[8][128]; uint16_t*maps[8];
  while(fscanf(c,"%127s %ld %ld %ld",fn,&off[nm],&rows[nm],&cols[nm])==4){int k;for(k=0;k<nf;k++)if(!strcmp(files[k],fn))break; if(k==nf){strcpy(files[nf++],fn);} fi[nm++]=k;}
  for(int k=0;k<nf;k++){char p[300];snprintf(p,300,"%s/%s",dir,files[k]);int fd=open(p,O_RDONLY);struct stat st;fstat(fd,&st);maps[k]=mmap(0,st.st_size,PROT_READ,MAP_SHARED,fd,0);}
  float*x=aligned_alloc(64,14336*4),*y=aligned_alloc(64,(128320+64)*4); for(int i=0;i<14336;i++)x[i]=0.001f*(i%7);
  double bytes=0; for(int m=0;m<nm;m++)bytes+=rows[m]*cols[m]*2.0;
  for(int r=0;r<reps;r++){double t0=now();
    for(int m=0;m<nm;m++){struct job j={x,(const uint16_t*)((char*)maps[fi[m]]+off[m]),cols[m],rows[m],y,0,64};
      pthread_t th;pthread_create(&th,0,worker,&j);worker(&j);pthread_join(th,0);}
    double dt=now()-t0; printf("chain %.0f ms %.1f GB/s\n",dt*1e3,bytes/dt/1e9);}
}
