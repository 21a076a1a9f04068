package data

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// AssignShards is the shard assignment of one rank of a data-parallel run:
// shards (sorted by the caller) are dealt round-robin, shard i to rank
// i mod world, so ranks read disjoint files and together read all of them.
// world <= 1 returns every shard. With fewer shards than ranks the extra
// ranks get none (the caller then reports it; sharing files between ranks
// would duplicate records).
func AssignShards(shards []string, rank, world int) ([]string, error) {
	if world <= 1 {
		return shards, nil
	}
	if rank < 0 || rank >= world {
		return nil, fmt.Errorf("data: rank %d outside [0,%d)", rank, world)
	}
	var out []string
	for i, s := range shards {
		if i%world == rank {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("data: %d shards for %d ranks: rank %d has none (use fewer ranks or more shards)", len(shards), world, rank)
	}
	return out, nil
}

// globShards expands a source path into its shard files: a file, a glob
// pattern ("shard_*.arrow"), or a directory (every file with one of exts,
// recursively). Shards are sorted naturally (shard_9 before shard_10).
func globShards(path string, exts ...string) ([]string, error) {
	var files []string
	if strings.ContainsAny(path, "*?[") {
		m, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
		files = m
	} else {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		if !st.IsDir() {
			return []string{path}, nil
		}
		err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			for _, e := range exts {
				if strings.HasSuffix(strings.ToLower(p), e) {
					files = append(files, p)
					break
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("data: %s: no shard files (%s)", path, strings.Join(exts, ", "))
	}
	sortStringsNatural(files)
	return files, nil
}

// naturalLess compares strings with digit runs compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// fileCache keeps shard files open after their first use (lazily), at
// most max at a time (least recently used closed first). os.File.ReadAt is
// safe for concurrent use.
type fileCache struct {
	mu    sync.Mutex
	max   int
	files map[string]*cachedFile
	tick  uint64
}

type cachedFile struct {
	f    *os.File
	used uint64
	refs int
}

func newFileCache(max int) *fileCache {
	return &fileCache{max: max, files: map[string]*cachedFile{}}
}

// get returns the open file and a release function.
func (c *fileCache) get(path string) (*os.File, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	cf, ok := c.files[path]
	if !ok {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		if len(c.files) >= c.max {
			var victim string
			var oldest uint64 = ^uint64(0)
			for p, x := range c.files {
				if x.refs == 0 && x.used < oldest {
					victim, oldest = p, x.used
				}
			}
			if victim != "" {
				c.files[victim].f.Close()
				delete(c.files, victim)
			}
		}
		cf = &cachedFile{f: f}
		c.files[path] = cf
	}
	cf.used = c.tick
	cf.refs++
	return cf.f, func() {
		c.mu.Lock()
		cf.refs--
		c.mu.Unlock()
	}, nil
}

func (c *fileCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, x := range c.files {
		x.f.Close()
		delete(c.files, p)
	}
}

func sortStringsNatural(s []string) {
	sort.Slice(s, func(a, b int) bool { return naturalLess(s[a], s[b]) })
}
