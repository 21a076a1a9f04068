// Package dist is the trainer's view of the processes of a distributed job:
// a small cgo binding of MPI (communicator, rank and size, sum all-reduce,
// reduce-scatter, all-gather, gather, barrier, abort) on float32/float64
// and byte buffers, plus the two rules the trainer relies on:
//
//   - Launch: Init calls MPI_Init only when an MPI launcher started the
//     process (mpirun/mpiexec of Open MPI, MPICH or Intel MPI, Slurm's srun
//     --mpi=pmix|pmi2): see Launched. A plain `magma pretrain` never touches
//     MPI, so it needs no MPI daemon, runs in containers without a network
//     and behaves exactly as a single process.
//   - Failure: every collective runs under a watchdog (Timeout); a rank
//     that errors reports its error (naming its rank) and aborts the job
//     with MPI_Abort, so no rank waits forever on a peer that is gone.
//
// Collectives are serialised by a mutex (MPI_THREAD_SERIALIZED is the
// least the binding needs, since goroutines move between OS threads), so a
// communication goroutine can reduce gradient buckets while the compute
// goroutine runs the backward pass.
//
// Build against a site's MPI: the package links -lmpi and looks for mpi.h
// in Debian's Open MPI include folders; elsewhere point cgo at the site's
// MPI with CGO_CFLAGS="$(mpicc --showme:compile)" CGO_LDFLAGS="$(mpicc
// --showme:link)" (Open MPI; MPICH: mpicc -compile-info / -link-info, or
// pkg-config --cflags --libs ompi-c|mpich). The nompi build tag builds
// without MPI: Init then refuses to run under a launcher.
package dist
