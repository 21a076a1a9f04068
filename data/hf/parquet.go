package hf

import (
	"context"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetFile reads row groups of projected columns on demand.
type parquetFile struct {
	path    string
	mu      sync.Mutex
	rdr     *file.Reader
	arrow   *pqarrow.FileReader
	first   []int // first row of each row group
	leaves  map[string][]int
	cache   []pqCached
	maxKeep int
}

type pqCached struct {
	rg   int
	cols string
	tbl  arrow.Table
}

func openParquet(path string) (*File, error) {
	h := &File{Path: path, Format: Parquet}
	p := &parquetFile{path: path, maxKeep: 2}
	if err := p.open(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sch, err := p.arrow.Schema()
	if err != nil {
		p.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h.Schema = sch
	md := p.rdr.MetaData()
	rows := 0
	for i := 0; i < p.rdr.NumRowGroups(); i++ {
		p.first = append(p.first, rows)
		rows += int(md.RowGroup(i).NumRows())
	}
	h.NumRows = rows
	p.leaves = map[string][]int{}
	for j := 0; j < md.Schema.NumColumns(); j++ {
		top := md.Schema.Column(j).ColumnPath()[0]
		p.leaves[top] = append(p.leaves[top], j)
	}
	p.close() // reopened lazily
	h.pq = p
	return h, nil
}

func (p *parquetFile) open() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parquet: %v", r)
		}
	}()
	if p.rdr != nil {
		return nil
	}
	rdr, err := file.OpenParquetFile(p.path, true)
	if err != nil {
		return err
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		rdr.Close()
		return err
	}
	p.rdr, p.arrow = rdr, fr
	return nil
}

func (p *parquetFile) close() {
	for _, c := range p.cache {
		c.tbl.Release()
	}
	p.cache = nil
	if p.rdr != nil {
		p.rdr.Close()
	}
	p.rdr, p.arrow = nil, nil
}

func (p *parquetFile) rowGroups() int { return len(p.first) }

func (p *parquetFile) groupOf(r int) int {
	g := 0
	for i, f := range p.first {
		if f <= r {
			g = i
		}
	}
	return g
}

// rowGroup returns row group rg with the named top-level columns (all
// when cols is nil), from the cache or decoded now. The caller releases.
func (p *parquetFile) rowGroup(rg int, cols []string) (tbl arrow.Table, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := fmt.Sprint(cols)
	for _, c := range p.cache {
		if c.rg == rg && c.cols == key {
			c.tbl.Retain()
			return c.tbl, nil
		}
	}
	if err := p.open(); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			tbl, err = nil, fmt.Errorf("row group %d: %v", rg, r)
		}
	}()
	var idx []int
	if cols == nil {
		for j := 0; j < p.rdr.MetaData().Schema.NumColumns(); j++ {
			idx = append(idx, j)
		}
	} else {
		for _, c := range cols {
			l, ok := p.leaves[c]
			if !ok {
				return nil, fmt.Errorf("no column %q", c)
			}
			idx = append(idx, l...)
		}
	}
	tbl, err = p.arrow.ReadRowGroups(context.Background(), idx, []int{rg})
	if err != nil {
		return nil, fmt.Errorf("row group %d: %w", rg, err)
	}
	if len(p.cache) >= p.maxKeep {
		p.cache[0].tbl.Release()
		p.cache = p.cache[1:]
	}
	tbl.Retain()
	p.cache = append(p.cache, pqCached{rg: rg, cols: key, tbl: tbl})
	return tbl, nil
}
