//go:build nompi

package dist

import (
	"errors"
	"fmt"
	"os"
)

// Comm is the stand-in of a build without MPI (tag nompi): Init never
// returns one.
type Comm struct{ rank, size int }

var errNoMPI = errors.New("dist: built without MPI (nompi)")

// Init returns nil, nil for a single process and refuses to run under an
// MPI launcher, whose other ranks would otherwise each train alone.
func Init() (*Comm, error) {
	if ok, v := Launched(); ok {
		return nil, fmt.Errorf("started by an MPI launcher (%s is set) but this magma was built with -tags nompi; rebuild without it", v)
	}
	return nil, nil
}

func (c *Comm) Rank() int                                      { return c.rank }
func (c *Comm) Size() int                                      { return c.size }
func (c *Comm) AllreduceF64([]float64) error                   { return errNoMPI }
func (c *Comm) AllreduceF32([]float32) error                   { return errNoMPI }
func (c *Comm) AllreduceMaxI64([]int64) error                  { return errNoMPI }
func (c *Comm) ReduceScatterF32(_, _ []float32, _ []int) error { return errNoMPI }
func (c *Comm) AllgathervF32([]float32, []int) error           { return errNoMPI }
func (c *Comm) GathervF32(_, _ []float32, _ []int, _ int) error {
	return errNoMPI
}
func (c *Comm) AllgatherBytes([]byte) ([][]byte, error) { return nil, errNoMPI }
func (c *Comm) BcastBytes([]byte, int) ([]byte, error)  { return nil, errNoMPI }
func (c *Comm) Barrier() error                          { return errNoMPI }
func (c *Comm) Finalize() error                         { return nil }
func (c *Comm) Abort(err error, code int) {
	fmt.Fprintf(os.Stderr, "magma: %v\n", err)
	os.Exit(code)
}
