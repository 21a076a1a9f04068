// membw: sequential read bandwidth of this machine, the bound for decoding
// (a decode step reads every decoder weight once). Reads a buffer of SIZE MB
// (default 2048) with T threads (default 2), each summing its contiguous
// part as 8 independent vector accumulators; prints the best of REPS passes
// as GB/s (1e9 bytes). With FILE, reads that file memory-mapped read-only
// instead (its first SIZE MB, after one pass that pages it in): what a
// decode over mapped weights can get (4 KiB page-cache pages, where the
// anonymous buffer may get transparent huge pages).
// Build: cc -O3 -march=native -pthread membw.c
// Usage: membw [SIZE_MB [THREADS [REPS [FILE]]]]
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float v8 __attribute__((vector_size(32)));

static v8 *buf;
static size_t nvec;
static int nthreads;
static volatile float sink;

static void *reader(void *arg) {
	long t = (long)arg;
	size_t lo = nvec * t / nthreads, hi = nvec * (t + 1) / nthreads;
	v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
	for (size_t i = lo; i + 8 <= hi; i += 8) {
		a0 += buf[i]; a1 += buf[i + 1]; a2 += buf[i + 2]; a3 += buf[i + 3];
		a4 += buf[i + 4]; a5 += buf[i + 5]; a6 += buf[i + 6]; a7 += buf[i + 7];
	}
	v8 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
	sink += s[0] + s[7];
	return NULL;
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
	size_t mb = argc > 1 ? strtoul(argv[1], 0, 10) : 2048;
	nthreads = argc > 2 ? atoi(argv[2]) : 2;
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	size_t bytes = mb << 20;
	int warm = 0;
	if (argc > 4) {
		int fd = open(argv[4], O_RDONLY);
		if (fd < 0) {
			perror(argv[4]);
			return 1;
		}
		struct stat st;
		if (fstat(fd, &st) || (size_t)st.st_size < bytes) {
			fprintf(stderr, "%s: shorter than %zu MB\n", argv[4], mb);
			return 1;
		}
		buf = mmap(0, bytes, PROT_READ, MAP_SHARED, fd, 0);
		if (buf == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		warm = 1; // the first pass pages the file in: not counted
	} else {
		if (posix_memalign((void **)&buf, 64, bytes)) {
			perror("membw");
			return 1;
		}
		memset(buf, 1, bytes); // fault every page in before timing
	}
	nvec = bytes / sizeof(v8);
	if (nthreads < 1 || nthreads > 64) nthreads = 2;
	pthread_t th[64];
	double best = 0;
	if (warm) {
		for (long t = 0; t < nthreads; t++) pthread_create(&th[t], 0, reader, (void *)t);
		for (int t = 0; t < nthreads; t++) pthread_join(th[t], 0);
	}
	for (int r = 0; r < reps; r++) {
		double t0 = now();
		for (long t = 0; t < nthreads; t++) pthread_create(&th[t], 0, reader, (void *)t);
		for (int t = 0; t < nthreads; t++) pthread_join(th[t], 0);
		double gbs = bytes / (now() - t0) / 1e9;
		if (gbs > best) best = gbs;
	}
	printf("%.2f\n", best);
	return 0;
}
