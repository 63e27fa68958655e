package data

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// parquetBatchRows is how many rows one decoded Parquet record holds: a
// row group is streamed in records of this size, so memory stays bounded
// even for img2dataset files whose single row group holds a whole shard.
const parquetBatchRows = 256

// parquetShard reads selected top-level columns of a memory-mapped Parquet
// file through pqarrow. Row groups are the unit of random access; within a
// row group records are decoded sequentially from a cursor.
type parquetShard struct {
	path   string
	pf     *file.Reader
	fr     *pqarrow.FileReader
	full   *arrow.Schema // every column
	sch    *arrow.Schema // the projected columns records carry
	leaves []int         // parquet leaf columns of the projection
	groups []int64       // rows per row group
	starts []int64

	// cursor over one row group
	curGroup int
	rr       pqarrow.RecordReader
	rec      arrow.Record
	recFirst int64 // shard row of rec's first row
	nextRow  int64 // shard row after rec
}

// openParquetShard opens path and reads its footer.
func openParquetShard(path string, mem memory.Allocator) (*parquetShard, error) {
	pf, err := file.OpenParquetFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows}, mem)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	full, err := fr.Schema()
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("%s: arrow schema: %w", path, err)
	}
	s := &parquetShard{path: path, pf: pf, fr: fr, full: full, sch: full, curGroup: -1}
	n := pf.NumRowGroups()
	s.groups = make([]int64, n)
	s.starts = make([]int64, n+1)
	for i := 0; i < n; i++ {
		s.groups[i] = pf.MetaData().RowGroup(i).NumRows()
		s.starts[i+1] = s.starts[i] + s.groups[i]
	}
	return s, nil
}

// project restricts reading to the named top-level columns.
func (s *parquetShard) project(names []string) error {
	var leaves []int
	var fields []arrow.Field
	for _, name := range names {
		idx := s.full.FieldIndices(name)
		if len(idx) == 0 {
			return fmt.Errorf("%s: column %q not found", s.path, name)
		}
		i := idx[0]
		leaves = appendLeaves(leaves, s.fr.Manifest.Fields[i])
		fields = append(fields, s.full.Field(i))
	}
	sort.Ints(leaves)
	// pqarrow returns fields in file order; mirror that order.
	sort.SliceStable(fields, func(a, b int) bool {
		return s.full.FieldIndices(fields[a].Name)[0] < s.full.FieldIndices(fields[b].Name)[0]
	})
	md := s.full.Metadata()
	s.sch = arrow.NewSchema(fields, &md)
	s.leaves = leaves
	s.resetCursor()
	return nil
}

func appendLeaves(dst []int, f pqarrow.SchemaField) []int {
	// pqarrow marks group fields with their first leaf's index, so only
	// childless fields are leaves.
	if len(f.Children) == 0 {
		return append(dst, f.ColIndex)
	}
	for _, c := range f.Children {
		dst = appendLeaves(dst, c)
	}
	return dst
}

func (s *parquetShard) schema() *arrow.Schema { return s.sch }
func (s *parquetShard) chunkRows() []int64    { return append([]int64(nil), s.groups...) }
func (s *parquetShard) numRows() int64        { return s.starts[len(s.starts)-1] }

func (s *parquetShard) resetCursor() {
	if s.rr != nil {
		s.rr.Release()
		s.rr = nil
	}
	s.rec, s.curGroup = nil, -1
}

// recordAt returns a decoded record holding row, and its first row. The
// record is valid until the next call; callers serialise access.
func (s *parquetShard) recordAt(row int64) (arrow.Record, int64, error) {
	if s.rec != nil && row >= s.recFirst && row < s.nextRow {
		return s.rec, s.recFirst, nil
	}
	g := sort.Search(len(s.groups), func(i int) bool { return s.starts[i+1] > row })
	if g >= len(s.groups) {
		return nil, 0, fmt.Errorf("%s: row %d out of range [0, %d)", s.path, row, s.numRows())
	}
	if g != s.curGroup || s.rr == nil || row < s.nextRow {
		s.resetCursor()
		rr, err := s.fr.GetRecordReader(context.Background(), s.leaves, []int{g})
		if err != nil {
			return nil, 0, fmt.Errorf("%s: row group %d: %w", s.path, g, err)
		}
		s.rr, s.curGroup, s.nextRow = rr, g, s.starts[g]
	}
	for {
		if !s.rr.Next() {
			err := s.rr.Err()
			if err == nil {
				err = errors.New("row group ended early")
			}
			s.resetCursor()
			return nil, 0, fmt.Errorf("%s: row group %d: %w", s.path, g, err)
		}
		s.rec = s.rr.Record()
		s.recFirst = s.nextRow
		s.nextRow += s.rec.NumRows()
		if row < s.nextRow {
			return s.rec, s.recFirst, nil
		}
	}
}

func (s *parquetShard) close() error {
	s.resetCursor()
	if s.pf == nil {
		return nil
	}
	err := s.pf.Close()
	s.pf = nil
	return err
}
