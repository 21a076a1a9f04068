//go:build !nompi

package dist

/*
#cgo CFLAGS: -I/usr/lib/x86_64-linux-gnu/openmpi/include -I/usr/lib/aarch64-linux-gnu/openmpi/include
#cgo LDFLAGS: -lmpi
#include <stdlib.h>
#include <mpi.h>

// Open MPI's handles are addresses of globals: cgo cannot use the macros
// directly, so these helpers name them.
static int magma_init(int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, provided);
	if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	return rc;
}
static int magma_serialized(int provided) { return provided >= MPI_THREAD_SERIALIZED; }
static int magma_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int magma_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int magma_allreduce_f64(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int magma_allreduce_max_i64(long long *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
}
static int magma_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int magma_reduce_scatter_f32(float *send, float *recv, int *counts) {
	return MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int magma_allgatherv_f32(float *buf, int *counts, int *displs) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
static int magma_gatherv_f32(float *send, int n, float *recv, int *counts, int *displs, int root) {
	return MPI_Gatherv(send, n, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, root, MPI_COMM_WORLD);
}
static int magma_allgather_bytes(char *send, int n, char *recv) {
	return MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
}
static int magma_bcast_bytes(char *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int magma_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static void magma_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int magma_finalize(void) { return MPI_Finalize(); }
static void magma_error_string(int code, char *buf) {
	int n = 0;
	MPI_Error_string(code, buf, &n);
	buf[n < MPI_MAX_ERROR_STRING ? n : MPI_MAX_ERROR_STRING - 1] = 0;
}
static int magma_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"
)

// Comm is MPI_COMM_WORLD of a job started by an MPI launcher.
type Comm struct {
	rank, size int
	timeout    time.Duration
	mu         sync.Mutex
	done       bool
}

// Init joins the job when an MPI launcher started this process (Launched)
// and returns its communicator; without a launcher it returns nil, nil: a
// single process that never calls MPI.
func Init() (*Comm, error) {
	if ok, _ := Launched(); !ok {
		return nil, nil
	}
	timeout, err := timeoutFromEnv()
	if err != nil {
		return nil, err
	}
	var provided C.int
	if rc := C.magma_init(&provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Init_thread: %s", errString(rc))
	}
	c := &Comm{timeout: timeout}
	var r, s C.int
	if rc := C.magma_rank(&r); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_rank: %s", errString(rc))
	}
	if rc := C.magma_size(&s); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_size: %s", errString(rc))
	}
	c.rank, c.size = int(r), int(s)
	if C.magma_serialized(provided) == 0 {
		c.Abort(fmt.Errorf("the MPI library provides thread level %d; magma needs MPI_THREAD_SERIALIZED or better", int(provided)), 1)
	}
	return c, nil
}

// Rank is this process's rank (0-based).
func (c *Comm) Rank() int { return c.rank }

// Size is the number of processes.
func (c *Comm) Size() int { return c.size }

func errString(rc C.int) string {
	buf := (*C.char)(C.malloc(C.size_t(C.magma_max_error_string() + 1)))
	defer C.free(unsafe.Pointer(buf))
	C.magma_error_string(rc, buf)
	return fmt.Sprintf("%s (MPI error %d)", C.GoString(buf), int(rc))
}

// call runs one collective under the lock and the watchdog.
func (c *Comm) call(name string, f func() C.int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return fmt.Errorf("dist: %s after Finalize", name)
	}
	t := time.AfterFunc(c.timeout, func() {
		fmt.Fprintf(os.Stderr, "magma: rank %d of %d: %s has waited %v for the other ranks (MAGMA_DIST_TIMEOUT); one of them is stuck or gone: aborting the job\n",
			c.rank, c.size, name, c.timeout)
		C.magma_abort(3)
	})
	rc := f()
	t.Stop()
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("dist: rank %d: %s: %s", c.rank, name, errString(rc))
	}
	return nil
}

// AllreduceF64 sums buf over the ranks, in place.
func (c *Comm) AllreduceF64(buf []float64) error {
	if len(buf) == 0 {
		return nil
	}
	return c.call("MPI_Allreduce", func() C.int { return C.magma_allreduce_f64((*C.double)(&buf[0]), C.int(len(buf))) })
}

// AllreduceF32 sums buf over the ranks, in place.
func (c *Comm) AllreduceF32(buf []float32) error {
	if len(buf) == 0 {
		return nil
	}
	return c.call("MPI_Allreduce", func() C.int { return C.magma_allreduce_f32((*C.float)(&buf[0]), C.int(len(buf))) })
}

// AllreduceMaxI64 takes the element-wise maximum of buf over the ranks.
func (c *Comm) AllreduceMaxI64(buf []int64) error {
	if len(buf) == 0 {
		return nil
	}
	return c.call("MPI_Allreduce", func() C.int { return C.magma_allreduce_max_i64((*C.longlong)(&buf[0]), C.int(len(buf))) })
}

// ReduceScatterF32 sums send (len = sum of counts) over the ranks and
// leaves rank r's part (counts[r] elements, in rank order) in recv.
func (c *Comm) ReduceScatterF32(send, recv []float32, counts []int) error {
	if len(counts) != c.size {
		return fmt.Errorf("dist: reduce-scatter with %d counts for %d ranks", len(counts), c.size)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if len(send) != total || len(recv) != counts[c.rank] {
		return fmt.Errorf("dist: reduce-scatter of %d into %d, counts %v", len(send), len(recv), counts)
	}
	if total == 0 {
		return nil
	}
	cc := cInts(counts)
	defer C.free(unsafe.Pointer(cc))
	var dummy C.float
	rp := &dummy
	if len(recv) > 0 {
		rp = (*C.float)(&recv[0])
	}
	return c.call("MPI_Reduce_scatter", func() C.int { return C.magma_reduce_scatter_f32((*C.float)(&send[0]), rp, cc) })
}

// AllgathervF32 gathers in place: rank r's counts[r] elements already sit
// at buf[offsets[r]:] (Split's layout); afterwards every rank has all.
func (c *Comm) AllgathervF32(buf []float32, counts []int) error {
	if len(counts) != c.size {
		return fmt.Errorf("dist: allgather with %d counts for %d ranks", len(counts), c.size)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if len(buf) != total {
		return fmt.Errorf("dist: allgather of %d into %d", total, len(buf))
	}
	if total == 0 {
		return nil
	}
	cc, cd := cInts(counts), cInts(displs(counts))
	defer C.free(unsafe.Pointer(cc))
	defer C.free(unsafe.Pointer(cd))
	return c.call("MPI_Allgatherv", func() C.int { return C.magma_allgatherv_f32((*C.float)(&buf[0]), cc, cd) })
}

// GathervF32 gathers every rank's send to root's recv (rank order, counts
// from every rank; recv is ignored elsewhere).
func (c *Comm) GathervF32(send, recv []float32, counts []int, root int) error {
	if len(counts) != c.size || len(send) != counts[c.rank] {
		return fmt.Errorf("dist: gather of %d with counts %v", len(send), counts)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if c.rank == root && len(recv) != total {
		return fmt.Errorf("dist: gather of %d into %d", total, len(recv))
	}
	cc, cd := cInts(counts), cInts(displs(counts))
	defer C.free(unsafe.Pointer(cc))
	defer C.free(unsafe.Pointer(cd))
	var d1, d2 C.float
	sp, rp := &d1, &d2
	if len(send) > 0 {
		sp = (*C.float)(&send[0])
	}
	if c.rank == root && len(recv) > 0 {
		rp = (*C.float)(&recv[0])
	}
	return c.call("MPI_Gatherv", func() C.int {
		return C.magma_gatherv_f32(sp, C.int(len(send)), rp, cc, cd, C.int(root))
	})
}

// AllgatherBytes returns every rank's b (index = rank).
func (c *Comm) AllgatherBytes(b []byte) ([][]byte, error) {
	n := []int64{int64(len(b))}
	if err := c.AllreduceMaxI64(n); err != nil {
		return nil, err
	}
	w := int(n[0]) + 8
	send := C.malloc(C.size_t(w))
	recv := C.malloc(C.size_t(w * c.size))
	defer C.free(send)
	defer C.free(recv)
	sb := unsafe.Slice((*byte)(send), w)
	for i := 0; i < 8; i++ {
		sb[i] = byte(uint64(len(b)) >> (8 * i))
	}
	copy(sb[8:], b)
	if err := c.call("MPI_Allgather", func() C.int { return C.magma_allgather_bytes((*C.char)(send), C.int(w), (*C.char)(recv)) }); err != nil {
		return nil, err
	}
	rb := unsafe.Slice((*byte)(recv), w*c.size)
	out := make([][]byte, c.size)
	for r := range out {
		part := rb[r*w : (r+1)*w]
		var l uint64
		for i := 0; i < 8; i++ {
			l |= uint64(part[i]) << (8 * i)
		}
		if int(l) > w-8 {
			return nil, fmt.Errorf("dist: allgather: rank %d sent a bad length %d", r, l)
		}
		out[r] = append([]byte(nil), part[8:8+int(l)]...)
	}
	return out, nil
}

// BcastBytes sends root's b to every rank (the result; root gets b back).
func (c *Comm) BcastBytes(b []byte, root int) ([]byte, error) {
	n := []int64{0}
	if c.rank == root {
		n[0] = int64(len(b))
	}
	if err := c.AllreduceMaxI64(n); err != nil {
		return nil, err
	}
	if n[0] == 0 {
		return nil, nil
	}
	buf := C.malloc(C.size_t(n[0]))
	defer C.free(buf)
	gb := unsafe.Slice((*byte)(buf), int(n[0]))
	if c.rank == root {
		copy(gb, b)
	}
	if err := c.call("MPI_Bcast", func() C.int { return C.magma_bcast_bytes((*C.char)(buf), C.int(n[0]), C.int(root)) }); err != nil {
		return nil, err
	}
	return append([]byte(nil), gb...), nil
}

// Barrier waits for every rank.
func (c *Comm) Barrier() error {
	return c.call("MPI_Barrier", func() C.int { return C.magma_barrier() })
}

// Abort prints err naming this rank and ends the whole job with code (MPI_Abort: the launcher
// stops every rank). It does not return.
func (c *Comm) Abort(err error, code int) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "magma: rank %d of %d: %v\n", c.rank, c.size, err)
	}
	C.magma_abort(C.int(code))
	os.Exit(code)
}

// Finalize leaves the job (every rank must call it once, at the end).
func (c *Comm) Finalize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	if rc := C.magma_finalize(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI_Finalize: %s", errString(rc))
	}
	return nil
}

func displs(counts []int) []int {
	d := make([]int, len(counts))
	off := 0
	for i, n := range counts {
		d[i] = off
		off += n
	}
	return d
}

// cInts copies v to C memory (MPI may keep no Go pointer).
func cInts(v []int) *C.int {
	p := (*C.int)(C.malloc(C.size_t(len(v)) * C.size_t(unsafe.Sizeof(C.int(0)))))
	s := unsafe.Slice(p, len(v))
	for i, x := range v {
		s[i] = C.int(x)
	}
	return p
}
