package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Arrow IPC message header kinds (the MessageHeader union of Message.fbs).
const (
	ipcHeaderSchema     = 1
	ipcHeaderDictionary = 2
	ipcHeaderRecord     = 3
)

// ipcMagic starts and ends an Arrow IPC file (random-access format).
var ipcMagic = []byte("ARROW1")

// ipcFrame locates one encapsulated IPC message inside a mapped file.
type ipcFrame struct {
	kind    byte  // ipcHeaderSchema, ipcHeaderDictionary or ipcHeaderRecord
	metaOff int64 // offset of the flatbuffer Message
	metaLen int64
	bodyOff int64
	bodyLen int64
	rows    int64 // record batches only
	// compressed is set for record and dictionary batches whose buffers
	// are LZ4 or ZSTD compressed.
	compressed bool
}

// ipcShard reads one Arrow IPC file, stream or random-access format, from
// a memory map. Opening it scans only the message headers (a few bytes per
// record batch) to index the batches; a batch body is decoded on demand.
type ipcShard struct {
	path    string
	data    []byte
	release func() error
	sch     *arrow.Schema
	schema0 ipcFrame   // the schema message
	frames  []ipcFrame // dictionaries and record batches, in stream order
	batches []int      // indices into frames of the record batches
	starts  []int64    // starts[i] = first row of batch i; len(batches)+1 entries
	mem     memory.Allocator

	cacheIdx int
	cacheRec arrow.Record
}

// openIPCShard maps path and indexes its record batches.
func openIPCShard(path string, mem memory.Allocator) (*ipcShard, error) {
	b, release, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	s := &ipcShard{path: path, data: b, release: release, mem: mem, cacheIdx: -1}
	if err := s.index(); err != nil {
		release()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sch, err := s.readSchema()
	if err != nil {
		release()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.sch = sch
	return s, nil
}

// index scans the encapsulated messages of the file.
func (s *ipcShard) index() error {
	data := s.data
	end := int64(len(data))
	pos := int64(0)
	if len(data) >= 8 && bytes.Equal(data[:6], ipcMagic) {
		// File format: magic, padding, stream, footer, footer length, magic.
		n := int64(len(data))
		if n < 8+10 || !bytes.Equal(data[n-6:], ipcMagic) {
			return errors.New("Arrow IPC file is truncated: the trailing ARROW1 magic is missing")
		}
		footerLen := int64(int32(binary.LittleEndian.Uint32(data[n-10:])))
		if footerLen <= 0 || footerLen > n-18 {
			return fmt.Errorf("Arrow IPC file footer length %d is invalid", footerLen)
		}
		end = n - 10 - footerLen
		pos = 8
	}
	nRecords := 0
	for pos < end {
		if end-pos < 4 {
			return fmt.Errorf("truncated: %d stray bytes at offset %d", end-pos, pos)
		}
		prefix := binary.LittleEndian.Uint32(data[pos:])
		hdr := int64(4)
		metaLen := int64(int32(prefix))
		if prefix == 0xFFFFFFFF {
			if end-pos < 8 {
				return fmt.Errorf("truncated: message at offset %d has no length", pos)
			}
			metaLen = int64(int32(binary.LittleEndian.Uint32(data[pos+4:])))
			hdr = 8
		}
		if metaLen == 0 {
			break // end-of-stream marker
		}
		if metaLen < 0 || pos+hdr+metaLen > end {
			return fmt.Errorf("truncated: message at offset %d claims %d metadata bytes but the file ends at %d", pos, metaLen, end)
		}
		f := ipcFrame{metaOff: pos + hdr, metaLen: metaLen}
		kind, bodyLen, rows, err := parseIPCMessage(data[f.metaOff : f.metaOff+metaLen])
		if err != nil {
			return fmt.Errorf("message at offset %d: %w", pos, err)
		}
		f.kind, f.bodyOff, f.bodyLen, f.rows = kind, f.metaOff+metaLen, bodyLen, rows
		if bodyLen < 0 || f.bodyOff+bodyLen > end {
			what := "message"
			if kind == ipcHeaderRecord {
				what = fmt.Sprintf("record batch %d", nRecords)
			}
			return fmt.Errorf("truncated: %s body ends at byte %d but the data ends at byte %d", what, f.bodyOff+bodyLen, end)
		}
		pos = f.bodyOff + bodyLen
		f.compressed = batchCompressed(data[f.metaOff:f.metaOff+metaLen], kind)
		switch {
		case s.schema0.metaLen == 0:
			if kind != ipcHeaderSchema {
				return errors.New("not an Arrow IPC stream: the first message is not a schema")
			}
			if err := checkSchemaMessage(data[f.metaOff : f.metaOff+f.metaLen]); err != nil {
				return err
			}
			s.schema0 = f
		case kind == ipcHeaderRecord:
			s.batches = append(s.batches, len(s.frames))
			s.frames = append(s.frames, f)
			nRecords++
		case kind == ipcHeaderDictionary:
			s.frames = append(s.frames, f)
		default:
			return fmt.Errorf("unexpected IPC message of kind %d at offset %d", kind, pos)
		}
	}
	if s.schema0.metaLen == 0 {
		return errors.New("not an Arrow IPC stream or file: no schema message")
	}
	s.starts = make([]int64, len(s.batches)+1)
	for i, fi := range s.batches {
		s.starts[i+1] = s.starts[i] + s.frames[fi].rows
		if s.starts[i+1] < s.starts[i] || s.starts[i+1] > maxShardRows {
			return fmt.Errorf("record batch %d: row count %d is implausible (corrupt metadata)", i, s.frames[fi].rows)
		}
	}
	return nil
}

// maxShardRows bounds the rows of one shard, so that row arithmetic cannot
// overflow on corrupted row counts (2^61 rows were seen while fuzzing).
const maxShardRows = 1 << 40

// readSchema decodes the schema message.
func (s *ipcShard) readSchema() (*arrow.Schema, error) {
	r, err := ipc.NewReaderFromMessageReader(&frameMessages{data: s.data, frames: []ipcFrame{s.schema0}}, ipc.WithAllocator(s.mem))
	if err != nil {
		return nil, fmt.Errorf("decode schema: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

func (s *ipcShard) schema() *arrow.Schema { return s.sch }

func (s *ipcShard) chunkRows() []int64 {
	out := make([]int64, len(s.batches))
	for i, fi := range s.batches {
		out[i] = s.frames[fi].rows
	}
	return out
}

func (s *ipcShard) numRows() int64 { return s.starts[len(s.starts)-1] }

// recordAt returns the record batch holding row and the batch's first row.
// The record stays owned by the shard's cache and is valid until the next
// call; callers serialise access.
func (s *ipcShard) recordAt(row int64) (arrow.Record, int64, error) {
	i := sort.Search(len(s.batches), func(i int) bool { return s.starts[i+1] > row })
	if i >= len(s.batches) {
		return nil, 0, fmt.Errorf("%s: row %d out of range [0, %d)", s.path, row, s.numRows())
	}
	if s.cacheIdx == i {
		return s.cacheRec, s.starts[i], nil
	}
	rec, err := s.decodeBatch(i)
	if err != nil {
		return nil, 0, err
	}
	if s.cacheRec != nil {
		s.cacheRec.Release()
	}
	s.cacheIdx, s.cacheRec = i, rec
	return rec, s.starts[i], nil
}

// decodeBatch decodes record batch i, feeding the reader the schema, the
// dictionary batches that precede it and the batch itself.
func (s *ipcShard) decodeBatch(i int) (arrow.Record, error) {
	fi := s.batches[i]
	frames := []ipcFrame{s.schema0}
	for _, f := range s.frames[:fi] {
		if f.kind == ipcHeaderDictionary {
			frames = append(frames, f)
		}
	}
	frames = append(frames, s.frames[fi])
	// Arrow allocates each buffer at the length its metadata states before
	// copying it from the message body, and reads buffer descriptors past
	// the end of their vector without a bounds check; corrupted metadata
	// made it allocate 1 TB and die with a fatal, unrecoverable "out of
	// memory" (caught by FuzzOpenShard; regression seed in
	// testdata/fuzz/FuzzOpenShard). An uncompressed buffer cannot be
	// larger than its body (nor a concatenation of delta dictionaries than
	// all the bodies fed), so allocations beyond that panic instead, which
	// arrow's reader recovers into an error.
	limit := 0
	for _, f := range frames {
		n := int(f.bodyLen) + 128 // arrow pads allocations to 64 bytes
		if f.compressed {
			n = 1024*int(f.bodyLen) + 64<<20
		}
		limit += n
	}
	mem := boundedAllocator{Allocator: s.mem, max: limit}
	r, err := ipc.NewReaderFromMessageReader(&frameMessages{data: s.data, frames: frames}, ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%s: record batch %d: %w", s.path, i, err)
	}
	defer r.Release()
	if !r.Next() {
		err := r.Err()
		if err == nil {
			err = errors.New("no record decoded")
		}
		return nil, fmt.Errorf("%s: record batch %d: %w", s.path, i, err)
	}
	rec := r.Record()
	rec.Retain()
	return rec, nil
}

func (s *ipcShard) close() error {
	if s.cacheRec != nil {
		s.cacheRec.Release()
		s.cacheRec, s.cacheIdx = nil, -1
	}
	if s.release == nil {
		return nil
	}
	err := s.release()
	s.release, s.data = nil, nil
	return err
}

// frameMessages feeds indexed frames to an ipc.Reader without copying the
// message bytes out of the memory map.
type frameMessages struct {
	data   []byte
	frames []ipcFrame
	next   int
	cur    *ipc.Message
}

// Message implements ipc.MessageReader.
func (m *frameMessages) Message() (*ipc.Message, error) {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
	if m.next >= len(m.frames) {
		return nil, io.EOF
	}
	f := m.frames[m.next]
	m.next++
	meta := memory.NewBufferBytes(m.data[f.metaOff : f.metaOff+f.metaLen])
	body := memory.NewBufferBytes(m.data[f.bodyOff : f.bodyOff+f.bodyLen])
	m.cur = ipc.NewMessage(meta, body)
	return m.cur, nil
}

// Retain implements ipc.MessageReader.
func (m *frameMessages) Retain() {}

// Release implements ipc.MessageReader.
func (m *frameMessages) Release() {
	if m.cur != nil {
		m.cur.Release()
		m.cur = nil
	}
}

// parseIPCMessage reads the header kind, the body length and, for a record
// batch, the row count from a flatbuffer-encoded Arrow Message, checking
// every offset against the buffer.
func parseIPCMessage(b []byte) (kind byte, bodyLen, rows int64, err error) {
	bad := errors.New("corrupt IPC message metadata")
	msg, ok := fbRoot(b)
	if !ok {
		return 0, 0, 0, bad
	}
	// Message: version, header_type, header, bodyLength, custom_metadata.
	if p, ok := msg.field(1); ok {
		if p >= len(b) {
			return 0, 0, 0, bad
		}
		kind = b[p]
	}
	if p, ok := msg.field(3); ok {
		if p+8 > len(b) {
			return 0, 0, 0, bad
		}
		bodyLen = int64(binary.LittleEndian.Uint64(b[p:]))
	}
	if kind == ipcHeaderRecord {
		hdr, ok := msg.table(2)
		if !ok {
			return 0, 0, 0, bad
		}
		// RecordBatch: length, nodes, buffers, compression.
		if p, ok := hdr.field(0); ok {
			if p+8 > len(b) {
				return 0, 0, 0, bad
			}
			rows = int64(binary.LittleEndian.Uint64(b[p:]))
		}
		if rows < 0 {
			return 0, 0, 0, bad
		}
	}
	return kind, bodyLen, rows, nil
}

// fbTable is a position in a flatbuffer, read with bounds checks.
type fbTable struct {
	b   []byte
	pos int
}

// fbRoot returns the root table of a flatbuffer.
func fbRoot(b []byte) (fbTable, bool) {
	if len(b) < 4 {
		return fbTable{}, false
	}
	pos := int(binary.LittleEndian.Uint32(b))
	if pos < 0 || pos+4 > len(b) {
		return fbTable{}, false
	}
	return fbTable{b: b, pos: pos}, true
}

// field returns the absolute position of field k, or false when absent.
func (t fbTable) field(k int) (int, bool) {
	if t.pos < 0 || t.pos+4 > len(t.b) {
		return 0, false
	}
	vt := t.pos - int(int32(binary.LittleEndian.Uint32(t.b[t.pos:])))
	if vt < 0 || vt+4 > len(t.b) {
		return 0, false
	}
	vtLen := int(binary.LittleEndian.Uint16(t.b[vt:]))
	entry := 4 + 2*k
	if entry+2 > vtLen || vt+entry+2 > len(t.b) {
		return 0, false
	}
	off := int(binary.LittleEndian.Uint16(t.b[vt+entry:]))
	if off == 0 {
		return 0, false
	}
	return t.pos + off, true
}

// table follows the offset stored in field k to a sub-table.
func (t fbTable) table(k int) (fbTable, bool) {
	p, ok := t.field(k)
	if !ok || p+4 > len(t.b) {
		return fbTable{}, false
	}
	q := p + int(binary.LittleEndian.Uint32(t.b[p:]))
	if q < 0 || q+4 > len(t.b) {
		return fbTable{}, false
	}
	return fbTable{b: t.b, pos: q}, true
}

// checkSchemaMessage bounds every vector of a Schema message that arrow's
// decoder sizes a slice by (the schema's fields and custom metadata, each
// field's children and custom metadata), and the number of field tables
// it would visit. Arrow trusts these lengths: a flipped byte in the fields
// vector's length made it allocate tens of GB at once and die with a fatal,
// unrecoverable "out of memory" (caught by FuzzOpenShard; regression seed
// in testdata/fuzz/FuzzOpenShard). Offsets themselves need no check here:
// arrow's slicing panics on them, which its reader recovers into errors.
func checkSchemaMessage(b []byte) error {
	msg, ok := fbRoot(b)
	if !ok {
		return errors.New("corrupt IPC schema metadata")
	}
	schema, ok := msg.table(2)
	if !ok {
		return nil // no header: arrow reports it
	}
	// A well-formed schema is a tree of distinct Field tables, each at
	// least 4 bytes, so a message of n bytes holds fewer than n/4 of them;
	// more means tables are shared, which would make arrow's recursive
	// decoding blow up exponentially.
	budget := len(b) / 4
	var visit func(t fbTable, fieldsAt, metaAt int) error
	visit = func(t fbTable, fieldsAt, metaAt int) error {
		if _, _, err := fbVector(t, metaAt, 4); err != nil {
			return err
		}
		q, n, err := fbVector(t, fieldsAt, 4)
		if err != nil {
			return err
		}
		for i := range n {
			if budget--; budget < 0 {
				return errors.New("corrupt IPC schema metadata: more field tables than the message can hold")
			}
			e := q + 4 + 4*i
			child := fbTable{b: b, pos: e + int(binary.LittleEndian.Uint32(b[e:]))}
			if child.pos < 0 || child.pos+4 > len(b) {
				return fmt.Errorf("corrupt IPC schema metadata: field table %d past the end of the %d-byte message", i, len(b))
			}
			// Field: name, nullable, type_type, type, dictionary,
			// children (5), custom_metadata (6).
			if err := visit(child, 5, 6); err != nil {
				return err
			}
		}
		return nil
	}
	// Schema: endianness, fields (1), custom_metadata (2), features.
	return visit(schema, 1, 2)
}

// fbVector returns the position and length of the vector of elemSize-byte
// entries that field k of t refers to (length 0 when absent), checking
// that all its entries lie inside the buffer.
func fbVector(t fbTable, k, elemSize int) (pos, n int, err error) {
	p, ok := t.field(k)
	if !ok {
		return 0, 0, nil
	}
	if p+4 > len(t.b) {
		return 0, 0, errors.New("corrupt IPC metadata: vector offset past the end")
	}
	q := int64(p) + int64(binary.LittleEndian.Uint32(t.b[p:]))
	if q+4 > int64(len(t.b)) {
		return 0, 0, errors.New("corrupt IPC metadata: vector past the end")
	}
	length := int64(binary.LittleEndian.Uint32(t.b[q:]))
	if q+4+int64(elemSize)*length > int64(len(t.b)) {
		return 0, 0, fmt.Errorf("corrupt IPC metadata: a vector claims %d entries but the %d-byte message holds at most %d", length, len(t.b), (int64(len(t.b))-q-4)/int64(elemSize))
	}
	return int(q), int(length), nil
}

// batchCompressed reports whether a record or dictionary batch message
// declares compressed buffers.
func batchCompressed(b []byte, kind byte) bool {
	if kind != ipcHeaderRecord && kind != ipcHeaderDictionary {
		return false
	}
	msg, ok := fbRoot(b)
	if !ok {
		return false
	}
	batch, ok := msg.table(2)
	if ok && kind == ipcHeaderDictionary {
		// DictionaryBatch: id, data (1), isDelta.
		batch, ok = batch.table(1)
	}
	if !ok {
		return false
	}
	// RecordBatch: length, nodes, buffers, compression (3).
	_, has := batch.field(3)
	return has
}

// boundedAllocator refuses allocations of more than max bytes by
// panicking; arrow's IPC reader recovers the panic into an error.
type boundedAllocator struct {
	memory.Allocator
	max int
}

// Allocate implements memory.Allocator.
func (a boundedAllocator) Allocate(size int) []byte {
	a.check(size)
	return a.Allocator.Allocate(size)
}

// Reallocate implements memory.Allocator.
func (a boundedAllocator) Reallocate(size int, b []byte) []byte {
	a.check(size)
	return a.Allocator.Reallocate(size, b)
}

func (a boundedAllocator) check(size int) {
	if size > a.max {
		panic(fmt.Errorf("corrupt metadata: a buffer of %d bytes is larger than its message body allows (%d)", size, a.max))
	}
}
