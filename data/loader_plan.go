package data

import (
	"math/bits"
	"sort"
	"sync"
)

// plan maps an epoch's positions to (shard, row) without reading data. Its
// randomness comes from planRNG, a fixed algorithm, so an order stays the
// same across Go versions and machines: a checkpoint resumed elsewhere
// continues with the same batches.
type plan struct {
	shardRows []int
	rows      int
	shuffle   bool
	seed      uint64
	window    int
	rank      int
	ranks     int
	perRank   int
}

func newPlan(shards []ShardInfo, cfg LoaderConfig) *plan {
	p := &plan{shuffle: cfg.Shuffle, seed: cfg.Seed, window: cfg.ShuffleWindow, rank: cfg.Rank, ranks: cfg.Ranks}
	for _, s := range shards {
		p.shardRows = append(p.shardRows, s.Rows)
		p.rows += s.Rows
	}
	p.perRank = p.rows / p.ranks
	return p
}

// Tags that separate the random streams of a plan.
const (
	rngShards  = 1
	rngWindows = 2
	rngRows    = 3
)

// epochPlan is the order of one epoch.
type epochPlan struct {
	p          *plan
	epochNum   int
	shardOrder []int // shards in reading order
	shardPos   []int // shardPos[s]: index of shard s in shardOrder
	streamBase []int // streamBase[k]: first stream index of shardOrder[k]; one more entry
	winOrder   []int // windows in visiting order
	shortAt    int   // visiting position of the short last window, or -1
	lastLen    int   // rows of the last window

	mu    sync.Mutex
	perms map[int][]int32 // row permutations of recently used windows
	lru   []int
}

// epoch returns the plan of epoch e.
func (p *plan) epoch(e int) *epochPlan {
	ep := &epochPlan{p: p, perms: make(map[int][]int32), shortAt: -1}
	n := len(p.shardRows)
	ep.shardOrder = identity(n)
	nw := (p.rows + p.window - 1) / p.window
	ep.winOrder = identity(nw)
	if p.shuffle {
		newPlanRNG(p.seed, rngShards, uint64(e), 0).shuffleInts(ep.shardOrder)
		newPlanRNG(p.seed, rngWindows, uint64(e), 0).shuffleInts(ep.winOrder)
	}
	ep.streamBase = make([]int, n+1)
	ep.shardPos = make([]int, n)
	for k, s := range ep.shardOrder {
		ep.shardPos[s] = k
		ep.streamBase[k+1] = ep.streamBase[k] + p.shardRows[s]
	}
	ep.lastLen = p.rows - (nw-1)*p.window
	if ep.lastLen != p.window {
		for t, w := range ep.winOrder {
			if w == nw-1 {
				ep.shortAt = t
			}
		}
	}
	ep.epochNum = e
	return ep
}

// locate returns the shard and row at position q of the rank's order
// (0 <= q < perRank).
func (ep *epochPlan) locate(q int) (shard, row int) {
	_, idx := ep.position(q)
	return ep.shardRow(idx)
}

// position returns the visiting index of the window holding position q of
// the rank's order and the stream index of its row (the row's index in
// the concatenation of the shards in shardOrder).
func (ep *epochPlan) position(q int) (t, idx int) {
	p := ep.p
	pos := q*p.ranks + p.rank
	// Visiting slot t and offset within it, with the short window (if any)
	// at visiting position shortAt.
	var off int
	W := p.window
	switch s := ep.shortAt; {
	case s < 0 || pos < s*W:
		t, off = pos/W, pos%W
	case pos < s*W+ep.lastLen:
		t, off = s, pos-s*W
	default:
		r := pos - s*W - ep.lastLen
		t, off = s+1+r/W, r%W
	}
	w := ep.winOrder[t]
	if p.shuffle {
		off = int(ep.windowPerm(w)[off])
	}
	return t, w*W + off
}

// windowSpan returns the stream indices [start, end) of the window
// visited t-th.
func (ep *epochPlan) windowSpan(t int) (start, end int) {
	w := ep.winOrder[t]
	start = w * ep.p.window
	return start, min(start+ep.p.window, ep.p.rows)
}

// shardRow maps a stream index to its shard and row.
func (ep *epochPlan) shardRow(idx int) (shard, row int) {
	k := sort.Search(len(ep.shardOrder), func(k int) bool { return ep.streamBase[k+1] > idx })
	return ep.shardOrder[k], idx - ep.streamBase[k]
}

// streamIndex maps a shard and row to its stream index.
func (ep *epochPlan) streamIndex(shard, row int) int {
	return ep.streamBase[ep.shardPos[shard]] + row
}

// windowPerm returns the row permutation of window w, computing it on
// first use and keeping the last few.
func (ep *epochPlan) windowPerm(w int) []int32 {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if perm, ok := ep.perms[w]; ok {
		return perm
	}
	n := ep.p.window
	if w == len(ep.winOrder)-1 {
		n = ep.lastLen
	}
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	newPlanRNG(ep.p.seed, rngRows, uint64(ep.epochNum), uint64(w)).shuffleInt32s(perm)
	const keep = 4
	if len(ep.lru) >= keep {
		delete(ep.perms, ep.lru[0])
		ep.lru = ep.lru[1:]
	}
	ep.perms[w] = perm
	ep.lru = append(ep.lru, w)
	return perm
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// planRNG is SplitMix64: tiny, fast and fully specified, so plans are
// reproducible everywhere.
type planRNG struct{ state uint64 }

// mix64 is SplitMix64's output function.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newPlanRNG seeds a stream from the seed and up to three integers.
func newPlanRNG(seed, tag, a, b uint64) *planRNG {
	s := mix64(seed + 0x9e3779b97f4a7c15)
	s = mix64(s ^ (tag + 0x632be59bd9b4e019))
	s = mix64(s ^ (a + 0x8cb92ba72f3d8dd7))
	s = mix64(s ^ (b + 0xd1b54a32d192ed03))
	return &planRNG{state: s}
}

func (r *planRNG) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	return mix64(r.state)
}

// intn returns a uniform integer in [0, n) (Lemire's multiply-shift with
// rejection).
func (r *planRNG) intn(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.next(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), un)
		}
	}
	return int(hi)
}

// shuffleInts permutes s uniformly (Fisher-Yates).
func (r *planRNG) shuffleInts(s []int) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

// shuffleInt32s permutes s uniformly (Fisher-Yates).
func (r *planRNG) shuffleInt32s(s []int32) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}
