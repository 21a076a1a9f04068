package dist

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// launcherVars are environment variables that MPI launchers set in every
// process they start: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), PMIx
// launchers incl. srun --mpi=pmix and Open MPI 5 (PMIX_RANK), MPICH/Intel
// MPI's hydra and srun --mpi=pmi2 (PMI_SIZE, PMI_RANK). Slurm's own
// SLURM_PROCID is not one of them: it is also set for non-MPI job steps.
var launcherVars = []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}

// Launched reports whether an MPI launcher started this process (and which
// variable says so).
func Launched() (bool, string) {
	for _, v := range launcherVars {
		if _, ok := os.LookupEnv(v); ok {
			return true, v
		}
	}
	return false, ""
}

// LauncherRank is the rank the launcher gave this process ("" when none
// is known): for messages before (or without) Init.
func LauncherRank() string {
	if ok, _ := Launched(); !ok {
		return ""
	}
	for _, v := range []string{"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"} {
		if r, ok := os.LookupEnv(v); ok {
			return r
		}
	}
	return ""
}

// DefaultTimeout bounds how long one collective may wait for the other
// ranks before the job is aborted (MAGMA_DIST_TIMEOUT, in seconds,
// overrides it). It is generous: rank 0 writing a large checkpoint or
// compiling a new graph shape keeps the others waiting at the next
// collective. A rank that dies ends the job much sooner: the launcher
// notices the dead process and stops the others.
const DefaultTimeout = 30 * time.Minute

// timeoutFromEnv reads MAGMA_DIST_TIMEOUT.
func timeoutFromEnv() (time.Duration, error) {
	s := os.Getenv("MAGMA_DIST_TIMEOUT")
	if s == "" {
		return DefaultTimeout, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("MAGMA_DIST_TIMEOUT=%q: want a positive number of seconds", s)
	}
	return time.Duration(v * float64(time.Second)), nil
}

// Split returns the even split of n elements over size ranks: counts[r]
// elements for rank r, starting at offsets[r] (the first n%size ranks get
// one more).
func Split(n, size int) (counts, offsets []int) {
	counts, offsets = make([]int, size), make([]int, size)
	off := 0
	for r := range counts {
		counts[r] = n / size
		if r < n%size {
			counts[r]++
		}
		offsets[r] = off
		off += counts[r]
	}
	return counts, offsets
}

// Agree is the error-agreement step: every rank passes its own error (nil
// when fine) and gets back nil when every rank is fine, else one error
// listing each failing rank's message. All ranks must call it at the same
// point; they all return the same answer, so they stop together.
func (c *Comm) Agree(err error) error {
	msg := ""
	if err != nil {
		msg = err.Error()
		if msg == "" {
			msg = "error"
		}
	}
	all, gerr := c.AllgatherBytes([]byte(msg))
	if gerr != nil {
		return gerr
	}
	var failed []string
	for r, m := range all {
		if len(m) > 0 {
			failed = append(failed, fmt.Sprintf("rank %d: %s", r, m))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if len(failed) == 1 {
		return errors.New(failed[0])
	}
	// Identical messages on every rank (a bad recipe) read once.
	uniq := map[string][]int{}
	for r, m := range all {
		if len(m) > 0 {
			uniq[string(m)] = append(uniq[string(m)], r)
		}
	}
	if len(uniq) == 1 {
		for m, rs := range uniq {
			return fmt.Errorf("ranks %s: %s", joinInts(rs), m)
		}
	}
	sort.Strings(failed)
	return errors.New(strings.Join(failed, "\n"))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
