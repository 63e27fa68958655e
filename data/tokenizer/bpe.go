package tokenizer

import (
	"hash/maphash"
	"sync"
)

const (
	// cacheShards is the number of independently locked parts of the cache;
	// a power of two.
	cacheShards = 64
	// cacheShardEntries bounds one shard; a full shard is emptied.
	cacheShardEntries = 1 << 12
	// localCacheEntries bounds the lock-free cache of each scratch.
	localCacheEntries = 1 << 13
	// maxCachedPiece is the longest word (in bytes) that is cached.
	maxCachedPiece = 128
)

// bpeCache maps a word's bytes to its symbol ids. It is split into shards
// picked by a hash of the word so that goroutines rarely wait on each other.
type bpeCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
	_  [40]byte // keep shards on separate cache lines
}

func (c *bpeCache) init() {
	c.seed = maphash.MakeSeed()
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
}

func (c *bpeCache) shard(word []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, word)&(cacheShards-1)]
}

// appendPiece appends the ids of one pre-tokenized word.
func (t *Tokenizer) appendPiece(dst []int32, piece []byte, s *scratch) []int32 {
	switch {
	case len(piece) == 1:
		return append(dst, t.byteEndID[piece[0]])
	case string(piece) == StartOfText:
		return append(dst, t.sot)
	case string(piece) == EndOfText:
		return append(dst, t.eot)
	case len(piece) > maxCachedPiece:
		s.word = t.bpe(s.word[:0], piece)
		return append(dst, s.word...)
	}
	// First the caller's own small cache, which needs no lock, then the
	// shared one.
	if ids, ok := s.local[string(piece)]; ok {
		return append(dst, ids...)
	}
	sh := t.cache.shard(piece)
	sh.mu.RLock()
	ids, ok := sh.m[string(piece)]
	sh.mu.RUnlock()
	if !ok {
		s.word = t.bpe(s.word[:0], piece)
		ids = append([]int32(nil), s.word...)
		sh.mu.Lock()
		if len(sh.m) >= cacheShardEntries {
			clear(sh.m)
		}
		sh.m[string(piece)] = ids
		sh.mu.Unlock()
	}
	if s.local == nil || len(s.local) >= localCacheEntries {
		s.local = make(map[string][]int32)
	}
	s.local[string(piece)] = ids // the slices are never modified
	return append(dst, ids...)
}

// bpe splits one word (at least one byte) into symbols: it starts from one
// symbol per byte, the last one marked as ending the word, and repeatedly
// merges every non-overlapping occurrence, left to right, of the adjacent
// pair with the lowest merge rank, until no adjacent pair has a rank.
func (t *Tokenizer) bpe(word []int32, piece []byte) []int32 {
	last := len(piece) - 1
	for _, b := range piece[:last] {
		word = append(word, t.byteID[b])
	}
	word = append(word, t.byteEndID[piece[last]])
	for len(word) > 1 {
		best := merge{rank: -1}
		var left, right int32
		for i := 0; i+1 < len(word); i++ {
			m, ok := t.merges[mergeKey(word[i], word[i+1])]
			if ok && (best.rank < 0 || m.rank < best.rank) {
				best, left, right = m, word[i], word[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		out := word[:0]
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == left && word[i+1] == right {
				out = append(out, best.id)
				i += 2
			} else {
				out = append(out, word[i])
				i++
			}
		}
		word = out
	}
	return word
}
