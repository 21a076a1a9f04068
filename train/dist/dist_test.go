package dist

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCollectives runs this test binary under `mpirun -np 3` (make setup
// installs Open MPI) and checks every collective against its definition.
func TestCollectives(t *testing.T) {
	if os.Getenv("MAGMA_DIST_CHILD") == "1" {
		if err := collectives(); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("RANK OK")
		return
	}
	if ok, _ := Launched(); ok {
		t.Skip("already under a launcher")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatalf("mpirun not found (make setup installs Open MPI): %v", err)
	}
	cmd := exec.Command(mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "3", "-x", "MAGMA_DIST_CHILD=1",
		os.Args[0], "-test.run", "^TestCollectives$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "MAGMA_DIST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "RANK OK") != 3 {
		t.Fatalf("%v\n%s", err, out)
	}
}

func collectives() error {
	c, err := Init()
	if err != nil {
		return err
	}
	if c == nil {
		return errors.New("Init returned no communicator under mpirun")
	}
	defer c.Finalize()
	r, n := c.Rank(), c.Size()
	if n != 3 {
		return fmt.Errorf("size %d", n)
	}
	f64 := []float64{float64(r), 1}
	if err := c.AllreduceF64(f64); err != nil || f64[0] != 3 || f64[1] != 3 {
		return fmt.Errorf("AllreduceF64: %v %v", f64, err)
	}
	f32 := []float32{float32(r) * 0.5, 2}
	if err := c.AllreduceF32(f32); err != nil || f32[0] != 1.5 || f32[1] != 6 {
		return fmt.Errorf("AllreduceF32: %v %v", f32, err)
	}
	mx := []int64{int64(r * 10)}
	if err := c.AllreduceMaxI64(mx); err != nil || mx[0] != 20 {
		return fmt.Errorf("AllreduceMaxI64: %v %v", mx, err)
	}
	// 7 elements over 3 ranks: 3, 2, 2.
	counts, offs := Split(7, 3)
	if fmt.Sprint(counts, offs) != "[3 2 2] [0 3 5]" {
		return fmt.Errorf("Split: %v %v", counts, offs)
	}
	send := make([]float32, 7)
	for i := range send {
		send[i] = float32(i + 10*r)
	}
	recv := make([]float32, counts[r])
	if err := c.ReduceScatterF32(send, recv, counts); err != nil {
		return err
	}
	for j, v := range recv {
		i := offs[r] + j
		if want := float32(3*i + 30); v != want {
			return fmt.Errorf("ReduceScatterF32: element %d = %v, want %v", i, v, want)
		}
	}
	buf := make([]float32, 7)
	for j := 0; j < counts[r]; j++ {
		buf[offs[r]+j] = float32(100 * (r + 1))
	}
	if err := c.AllgathervF32(buf, counts); err != nil {
		return err
	}
	if fmt.Sprint(buf) != "[100 100 100 200 200 300 300]" {
		return fmt.Errorf("AllgathervF32: %v", buf)
	}
	var all []float32
	if r == 0 {
		all = make([]float32, 7)
	}
	if err := c.GathervF32(buf[offs[r]:offs[r]+counts[r]], all, counts, 0); err != nil {
		return err
	}
	if r == 0 && fmt.Sprint(all) != "[100 100 100 200 200 300 300]" {
		return fmt.Errorf("GathervF32: %v", all)
	}
	bs, err := c.AllgatherBytes([]byte(strings.Repeat("x", r)))
	if err != nil || len(bs) != 3 || string(bs[0]) != "" || string(bs[2]) != "xx" {
		return fmt.Errorf("AllgatherBytes: %q %v", bs, err)
	}
	b, err := c.BcastBytes([]byte("from zero"), 0)
	if err != nil || string(b) != "from zero" {
		return fmt.Errorf("BcastBytes: %q %v", b, err)
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	if err := c.Agree(nil); err != nil {
		return fmt.Errorf("Agree(nil): %v", err)
	}
	var mine error
	if r == 2 {
		mine = errors.New("disk full")
	}
	if err := c.Agree(mine); err == nil || err.Error() != "rank 2: disk full" {
		return fmt.Errorf("Agree: %v", err)
	}
	if err := c.Agree(errors.New("same")); err == nil || err.Error() != "ranks 0,1,2: same" {
		return fmt.Errorf("Agree(all): %v", err)
	}
	return nil
}

func TestLaunchedAndSplit(t *testing.T) {
	for _, v := range launcherVars {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	if ok, _ := Launched(); ok {
		t.Fatal("launched without launcher variables")
	}
	if c, err := Init(); c != nil || err != nil {
		t.Fatalf("Init without a launcher: %v %v", c, err)
	}
	t.Setenv("PMIX_RANK", "0")
	if ok, v := Launched(); !ok || v != "PMIX_RANK" {
		t.Fatalf("PMIX_RANK: %v %v", ok, v)
	}
	for _, tc := range []struct{ n, size int }{{0, 2}, {5, 2}, {6, 3}, {2, 4}} {
		c, o := Split(tc.n, tc.size)
		sum := 0
		for r := range c {
			if o[r] != sum || c[r] < tc.n/tc.size || c[r] > tc.n/tc.size+1 {
				t.Errorf("Split(%d, %d) = %v %v", tc.n, tc.size, c, o)
			}
			sum += c[r]
		}
		if sum != tc.n {
			t.Errorf("Split(%d, %d) covers %d", tc.n, tc.size, sum)
		}
	}
	t.Setenv("MAGMA_DIST_TIMEOUT", "abc")
	if _, err := timeoutFromEnv(); err == nil {
		t.Error("MAGMA_DIST_TIMEOUT=abc accepted")
	}
}
