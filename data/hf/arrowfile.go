package hf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Format is a file's container format.
type Format string

// Formats.
const (
	ArrowStream Format = "arrow-stream"
	ArrowFile   Format = "arrow-file"
	Parquet     Format = "parquet"
)

var arrowMagic = []byte("ARROW1")

// BadRows is a region of a file that cannot be read.
type BadRows struct {
	// FirstRow is the index (in the file) of the first row lost.
	FirstRow int
	Reason   string
}

// File is one indexed data file.
type File struct {
	Path    string
	Format  Format
	Schema  *arrow.Schema
	NumRows int
	Bad     []BadRows

	// arrow
	size    int64
	prefix  []msgRef // schema and dictionary messages
	batches []batchRef

	// parquet
	pq *parquetFile

	mu   sync.Mutex
	data []byte // mapping (nil until needed)
	// fr reads IPC file-format files through their footer (set with data)
	fr *ipc.FileReader

	// the last decoded record batch (zero-copy over data), shared by
	// readers of nearby rows
	cmu      sync.Mutex
	cacheIdx int
	cacheRec arrow.RecordBatch
}

type msgRef struct{ off, metaLen, bodyLen int64 }

type batchRef struct {
	msg   msgRef
	first int
	rows  int
}

// Open indexes a data file: Parquet by extension or magic, otherwise an
// Arrow IPC stream or file. The file is unmapped again afterwards.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var head [8]byte
	n, _ := io.ReadFull(f, head[:])
	if strings.HasSuffix(strings.ToLower(path), ".parquet") || (n >= 4 && string(head[:4]) == "PAR1") {
		return openParquet(path)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h := &File{Path: path, size: st.Size(), cacheIdx: -1}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	data, err := mmap(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer munmap(data)
	if len(data) >= 8 && bytes.Equal(data[:6], arrowMagic) {
		ferr := h.indexArrowFile(data)
		if ferr == nil {
			return h, nil
		}
		// no readable footer (a truncated file?): walk the messages, which
		// works when the writer put the schema in front (pyarrow does)
		*h = File{Path: path, size: st.Size(), cacheIdx: -1}
		if err := h.indexArrow(data); err != nil {
			return nil, fmt.Errorf("%s: Arrow file format without a readable footer (%v); reading it as messages: %w", path, ferr, err)
		}
		h.Bad = append([]BadRows{{FirstRow: h.NumRows, Reason: fmt.Sprintf("footer unreadable (%v): rows after the last complete batch are lost", ferr)}}, h.Bad...)
		return h, nil
	}
	if err := h.indexArrow(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// indexArrowFile reads an IPC file-format file through its footer.
func (h *File) indexArrowFile(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	fr, err := ipc.NewMappedFileReader(data)
	if err != nil {
		return err
	}
	defer fr.Close()
	h.Format = ArrowFile
	h.Schema = fr.Schema()
	rows := 0
	for i := 0; i < fr.NumRecords(); i++ {
		rec, err := fr.RecordBatchAt(i)
		if err != nil {
			h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("record batch %d: %v", i, err)})
			break
		}
		h.batches = append(h.batches, batchRef{first: rows, rows: int(rec.NumRows())})
		rows += int(rec.NumRows())
		rec.Release()
	}
	h.NumRows = rows
	return nil
}

func mmap(f *os.File, size int64) ([]byte, error) {
	if size > int64(^uint(0)>>1) {
		return nil, errors.New("file too large to map")
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) {
	if b != nil {
		_ = syscall.Munmap(b)
	}
}

// indexArrow walks the IPC messages. The file format is the stream format
// between the leading "ARROW1\0\0" and the footer, so one walk reads both.
func (h *File) indexArrow(data []byte) error {
	p := int64(0)
	h.Format = ArrowStream
	if len(data) >= 8 && bytes.Equal(data[:6], arrowMagic) {
		h.Format = ArrowFile
		p = 8
	}
	size := int64(len(data))
	rows := 0
	for {
		if p+4 > size {
			if h.Format == ArrowStream && p == size {
				break // stream without an end-of-stream marker
			}
			h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("truncated: message header at byte %d runs past the end of the file (%d bytes)", p, size)})
			break
		}
		cont := binary.LittleEndian.Uint32(data[p:])
		var metaLen int64
		hdr := int64(4)
		switch cont {
		case 0xFFFFFFFF:
			if p+8 > size {
				h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("truncated: message header at byte %d", p)})
				return h.finishIndex(data)
			}
			metaLen = int64(binary.LittleEndian.Uint32(data[p+4:]))
			hdr = 8
		default:
			metaLen = int64(cont) // pre-0.15 framing
		}
		if metaLen == 0 {
			break // end of stream
		}
		if p+hdr+metaLen > size {
			h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("truncated: message metadata at byte %d (%d bytes) runs past the end of the file (%d bytes)", p, metaLen, size)})
			break
		}
		msg, err := messageAt(data, p+hdr, metaLen, 0)
		if err != nil {
			h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("message at byte %d: %v", p, err)})
			break
		}
		ref := msgRef{off: p + hdr, metaLen: metaLen, bodyLen: msg.BodyLen()}
		end := p + hdr + metaLen + ref.bodyLen
		typ := msg.Type()
		if end > size {
			h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("truncated %v: body of %d bytes at byte %d runs past the end of the file (%d bytes)", typ, ref.bodyLen, p+hdr+metaLen, size)})
			break
		}
		switch typ {
		case ipc.MessageSchema, ipc.MessageDictionaryBatch:
			if typ == ipc.MessageSchema && len(h.prefix) > 0 {
				return errors.New("second schema message")
			}
			h.prefix = append(h.prefix, ref)
		case ipc.MessageRecordBatch:
			if len(h.prefix) == 0 {
				return errors.New("record batch before the schema")
			}
			h.batches = append(h.batches, batchRef{msg: ref, first: rows})
			n, err := h.countRows(data, len(h.batches)-1)
			if err != nil {
				h.batches = h.batches[:len(h.batches)-1]
				h.Bad = append(h.Bad, BadRows{FirstRow: rows, Reason: fmt.Sprintf("record batch %d at byte %d: %v", len(h.batches), p, err)})
				return h.finishIndex(data)
			}
			h.batches[len(h.batches)-1].rows = n
			rows += n
		default:
			return fmt.Errorf("unexpected %v message at byte %d", typ, p)
		}
		p = end
	}
	return h.finishIndex(data)
}

func (h *File) finishIndex(data []byte) error {
	if len(h.prefix) == 0 {
		if len(h.Bad) > 0 {
			return errors.New(h.Bad[0].Reason)
		}
		return errors.New("no Arrow schema message (not an Arrow IPC file)")
	}
	sch, err := h.readSchema(data)
	if err != nil {
		return err
	}
	h.Schema = sch
	for _, b := range h.batches {
		h.NumRows += b.rows
	}
	return nil
}

// messageAt builds a zero-copy ipc.Message over the map.
func messageAt(data []byte, metaOff, metaLen, bodyLen int64) (msg *ipc.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid message metadata: %v", r)
		}
	}()
	meta := memory.NewBufferBytes(data[metaOff : metaOff+metaLen])
	body := memory.NewBufferBytes(data[metaOff+metaLen : metaOff+metaLen+bodyLen])
	msg = ipc.NewMessage(meta, body)
	_ = msg.Type()
	return msg, nil
}

type msgList struct {
	msgs []*ipc.Message
	i    int
}

func (m *msgList) Message() (*ipc.Message, error) {
	if m.i >= len(m.msgs) {
		return nil, io.EOF
	}
	m.i++
	return m.msgs[m.i-1], nil
}
func (m *msgList) Release() {}
func (m *msgList) Retain()  {}

func (h *File) messages(data []byte, batch int) (*msgList, error) {
	l := &msgList{}
	refs := append([]msgRef(nil), h.prefix...)
	if batch >= 0 {
		refs = append(refs, h.batches[batch].msg)
	}
	for _, r := range refs {
		m, err := messageAt(data, r.off, r.metaLen, r.bodyLen)
		if err != nil {
			return nil, err
		}
		l.msgs = append(l.msgs, m)
	}
	return l, nil
}

func (h *File) readSchema(data []byte) (sch *arrow.Schema, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schema: %v", r)
		}
	}()
	l, err := h.messages(data, -1)
	if err != nil {
		return nil, err
	}
	rd, err := ipc.NewReaderFromMessageReader(l)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	defer rd.Release()
	return rd.Schema(), nil
}

// decodeBatch decodes record batch i over data (zero-copy).
func (h *File) decodeBatch(data []byte, i int) (rec arrow.RecordBatch, err error) {
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("decode: %v", r)
		}
	}()
	if h.Format == ArrowFile && len(h.prefix) == 0 {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fr == nil {
			if h.fr, err = ipc.NewMappedFileReader(data); err != nil {
				return nil, err
			}
		}
		return h.fr.RecordBatchAt(i)
	}
	l, err := h.messages(data, i)
	if err != nil {
		return nil, err
	}
	rd, err := ipc.NewReaderFromMessageReader(l)
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	if !rd.Next() {
		if rd.Err() != nil {
			return nil, rd.Err()
		}
		return nil, errors.New("no record batch")
	}
	rec = rd.RecordBatch()
	rec.Retain()
	return rec, nil
}

// batch returns record batch i, from the one-batch cache or decoded now;
// the caller releases it.
func (h *File) batch(data []byte, i int) (arrow.RecordBatch, error) {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	if h.cacheRec != nil && h.cacheIdx == i {
		h.cacheRec.Retain()
		return h.cacheRec, nil
	}
	rec, err := h.decodeBatch(data, i)
	if err != nil {
		return nil, err
	}
	if h.cacheRec != nil {
		h.cacheRec.Release()
	}
	h.cacheRec, h.cacheIdx = rec, i
	rec.Retain()
	return rec, nil
}

func (h *File) countRows(data []byte, i int) (int, error) {
	rec, err := h.decodeBatch(data, i)
	if err != nil {
		return 0, err
	}
	defer rec.Release()
	return int(rec.NumRows()), nil
}

// mapped returns the file's mapping, mapping it on first use.
func (h *File) mapped() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data != nil {
		return h.data, nil
	}
	f, err := os.Open(h.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != h.size {
		return nil, fmt.Errorf("%s changed size since it was indexed (%d → %d bytes)", h.Path, h.size, st.Size())
	}
	d, err := mmap(f, st.Size())
	if err != nil {
		return nil, err
	}
	h.data = d
	return d, nil
}

// Close unmaps the file (rows read before stay valid only if copied, as
// Row does).
func (h *File) Close() error {
	h.cmu.Lock()
	if h.cacheRec != nil {
		h.cacheRec.Release()
		h.cacheRec, h.cacheIdx = nil, -1
	}
	h.cmu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fr != nil {
		h.fr.Close()
		h.fr = nil
	}
	munmap(h.data)
	h.data = nil
	if h.pq != nil {
		h.pq.close()
	}
	return nil
}

// Batches is the number of record batches (Arrow) or row groups (Parquet).
func (h *File) Batches() int {
	if h.pq != nil {
		return h.pq.rowGroups()
	}
	return len(h.batches)
}

// batchOf finds the batch holding row r.
func (h *File) batchOf(r int) int {
	lo, hi := 0, len(h.batches)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if h.batches[mid].first <= r {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
