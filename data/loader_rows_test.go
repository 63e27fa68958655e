package data

import (
	"io"
	"testing"
)

// TestLoaderRows checks Batch.Rows: in shuffled epochs, with bad records
// filled by other examples, every slot's row number names the example of
// that slot (its default ID is "<shard file>:<row in shard>").
func TestLoaderRows(t *testing.T) {
	bad := map[int]bool{3: true, 64: true, 65: true, 200: true}
	src := openLoaderDataset(t, loaderDataset(t, loaderTestRows, bad))
	var want []string // want[row] is the ID of Source row row
	for s, sh := range src.Shards() {
		for r := 0; r < sh.Rows; r++ {
			want = append(want, loaderRowID(src, s, r))
		}
	}
	if len(src.Shards()) < 2 {
		t.Fatalf("the test data set has %d shard; the test needs several", len(src.Shards()))
	}
	cfg := testLoaderConfig(nil)
	cfg.Shuffle, cfg.ShuffleWindow, cfg.BatchSize = true, 50, 16
	l := newTestLoader(t, src, cfg)
	for epoch := range 2 {
		it, err := l.Epoch(epoch, 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for {
			b, err := it.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Rows) != b.N {
				t.Fatalf("epoch %d step %d: %d rows for %d examples", epoch, b.Step, len(b.Rows), b.N)
			}
			for j, row := range b.Rows {
				if row < 0 || row >= len(want) || want[row] != b.IDs[j] {
					t.Fatalf("epoch %d step %d slot %d: row %d, but the example is %s", epoch, b.Step, j, row, b.IDs[j])
				}
				if bad[row] {
					t.Errorf("epoch %d: bad row %d was used", epoch, row)
				}
			}
			seen += b.N
			b.Release()
		}
		it.Close()
		if seen == 0 {
			t.Fatalf("epoch %d had no examples", epoch)
		}
	}
}
