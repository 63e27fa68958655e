package backend

//go:generate go run gen_forward.go

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gopjrt/dtypes"

	"github.com/qatclip/qatclip/internal/gemm"
)

// goBackend is the pure-Go backend qatclip runs on: GoMLX's simplego for
// every op except float32 DotGeneral, which runs on internal/gemm (about 10x
// faster than simplego's matmul on the clip-tiny shapes), float32 ReduceSum
// over one run of axes (see reduce.go) and the float32 element-wise ops
// (see elementwise.go), which give bit-identical results to simplego's.
//
// simplego has no hook for replacing one op's implementation (its executor
// table and DotGeneral kernels are unexported), so goBackend splits each
// computation instead: its Builder records the graph, cuts it at every op
// it runs itself ("host op"), compiles each piece between cuts as a separate
// simplego computation ("stage"), and its Executable runs the stages in
// order with the host ops between them. Buffers are simplego's own, passed
// between stages without copies; each intermediate buffer is donated to
// (or freed after) its last reader, and element-wise host ops write into
// such a buffer when it has their output's shape. Only the ops the
// outputs depend on run (GoMLX's gradients leave many unused ops behind).
type goBackend struct {
	*simplego.Backend
	mul     *gemm.Multiplier
	workers int // goroutines per element-wise op
}

// Builder implements backends.Backend.
func (b *goBackend) Builder(name string) backends.Builder {
	return &stagedBuilder{backend: b, name: name}
}

// node is an op of a staged computation.
type node struct {
	id    int
	shape shapes.Shape
	stage *stage      // the builder stage computing it; nil for parameters and products
	inner backends.Op // the op in stage.builder
	param int         // index among the computation's parameters, or -1
	name  string      // parameter name
	host  *hostOp     // set for ops run in Go between stages
	// konst holds the flat data of a constant: host ops read it directly
	// and each stage that reads it gets its own copy of the constant, so
	// constants never start a stage of their own.
	konst any
	// deps are the nodes the op read (for ops of a builder stage): Compile
	// runs only the ops outputs depend on.
	deps []*node
	// broadcast is set on a float32 BroadcastInDim: binary host ops read
	// its source instead (see stagedBuilder.binary).
	broadcast *broadcastView
}

// broadcastView describes a broadcast as its source node and the source's
// dimensions placed on the output's axes (1 elsewhere).
type broadcastView struct {
	src  *node
	dims []int
}

// stage is one step of a staged computation: either a simplego computation
// (builder != nil) or one op run by qatclip's own code (host != nil).
type stage struct {
	index   int
	builder backends.Builder
	imports map[*node]backends.Op // nodes of other stages read here, as parameters
	order   []*node               // imports in parameter order
	consts  map[*node]backends.Op // constants copied into this stage
	// nextAfterImport is the id the next node got when the last import was
	// made: simplego needs an output created after every parameter.
	nextAfterImport int
	host            *node
}

// hostOp is an op run by qatclip's own code between stages: run reads the
// inputs' storage (flat slices such as []float32 or []bool) and writes
// every element of out. Inputs listed in alias have the output's shape and
// are read only at the index being written, so out may be the same slice
// as one of them: their buffer is reused when this op is their last reader.
type hostOp struct {
	name   string
	inputs []*node
	alias  []int
	run    func(in []any, out any) error
}

// stagedBuilder implements backends.Builder for goBackend.
type stagedBuilder struct {
	backend *goBackend
	name    string
	nodes   []*node
	params  []*node
	stages  []*stage
	cur     *stage // open builder stage, nil after a product
	err     error  // first error of an operand conversion, see takeErr
	// operands are the nodes read by the op being built (see in); out
	// records them as the new node's deps. operandsDone says the last
	// op is complete, so the next in starts a new list.
	operands     []*node
	operandsDone bool
}

var _ backends.Builder = (*stagedBuilder)(nil)

// Name implements backends.Builder.
func (b *stagedBuilder) Name() string { return b.name }

// stage returns the open builder stage, starting a new one when needed.
func (b *stagedBuilder) stage() (*stage, error) {
	if b.cur == nil {
		b.cur = &stage{
			index:   len(b.stages),
			builder: b.backend.Backend.Builder(fmt.Sprintf("%s#%d", b.name, len(b.stages))),
			imports: map[*node]backends.Op{},
			consts:  map[*node]backends.Op{},
		}
		b.stages = append(b.stages, b.cur)
	}
	return b.cur, nil
}

// node converts an op handed out by this builder back to its node.
func (b *stagedBuilder) node(op backends.Op) (*node, error) {
	n, ok := op.(*node)
	if !ok || n == nil || n.id >= len(b.nodes) || b.nodes[n.id] != n {
		return nil, fmt.Errorf("backend %s: op %v was not created by this builder", b.name, op)
	}
	return n, nil
}

// in returns the op standing for op inside stage s, importing it as a
// parameter of s when it was computed elsewhere. Errors are kept for takeErr.
func (b *stagedBuilder) in(s *stage, op backends.Op) backends.Op {
	n, err := b.node(op)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return nil
	}
	if b.operandsDone {
		b.operands, b.operandsDone = nil, false
	}
	b.operands = append(b.operands, n)
	if n.stage == s {
		return n.inner
	}
	if imp, ok := s.imports[n]; ok {
		return imp
	}
	if n.konst != nil {
		if c, ok := s.consts[n]; ok {
			return c
		}
		c, err := s.builder.Constant(n.konst, n.shape.Dimensions...)
		if err != nil {
			if b.err == nil {
				b.err = err
			}
			return nil
		}
		s.consts[n] = c
		return c
	}
	imp, err := s.builder.Parameter(fmt.Sprintf("n%d", n.id), n.shape, nil)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		return nil
	}
	s.imports[n] = imp
	s.order = append(s.order, n)
	s.nextAfterImport = len(b.nodes)
	return imp
}

// ins is in for a list of ops.
func (b *stagedBuilder) ins(s *stage, ops []backends.Op) []backends.Op {
	out := make([]backends.Op, len(ops))
	for i, op := range ops {
		out[i] = b.in(s, op)
	}
	return out
}

// takeErr returns and clears the error kept by in.
func (b *stagedBuilder) takeErr() error {
	err := b.err
	b.err = nil
	return err
}

// newNode registers a node.
func (b *stagedBuilder) newNode(shape shapes.Shape) *node {
	n := &node{id: len(b.nodes), shape: shape, param: -1}
	b.nodes = append(b.nodes, n)
	return n
}

// out wraps an op just created in stage s.
func (b *stagedBuilder) out(s *stage, op backends.Op) backends.Op {
	shape, err := s.builder.OpShape(op)
	if err != nil {
		shape = shapes.Invalid()
	}
	n := b.newNode(shape)
	n.stage, n.inner = s, op
	// Several outputs of one op share its operands; an op without
	// operands may inherit the previous op's, which only keeps more alive.
	n.deps = b.operands
	b.operandsDone = true
	return n
}

// outs is out for a list of ops.
func (b *stagedBuilder) outs(s *stage, ops []backends.Op) []backends.Op {
	res := make([]backends.Op, len(ops))
	for i, op := range ops {
		res[i] = b.out(s, op)
	}
	return res
}

// OpShape implements backends.Builder.
func (b *stagedBuilder) OpShape(op backends.Op) (shapes.Shape, error) {
	n, err := b.node(op)
	if err != nil {
		return shapes.Invalid(), err
	}
	return n.shape, nil
}

// Parameter implements backends.Builder.
func (b *stagedBuilder) Parameter(name string, shape shapes.Shape, sharding *backends.ShardingSpec) (backends.Op, error) {
	if sharding != nil {
		return nil, fmt.Errorf("backend %s: parameter %q: sharding is not supported by the pure-Go backend", b.name, name)
	}
	n := b.newNode(shape.Clone())
	n.param, n.name = len(b.params), name
	b.params = append(b.params, n)
	return n, nil
}

// Constant implements backends.Builder. The data is kept on the node (see
// node.konst), not copied, as simplego does.
func (b *stagedBuilder) Constant(flat any, dims ...int) (backends.Op, error) {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("backend %s: Constant: flat must be a slice, got %T", b.name, flat)
	}
	dtype := dtypes.FromGoType(v.Type().Elem())
	if dtype == dtypes.InvalidDType {
		return nil, fmt.Errorf("backend %s: Constant: unsupported element type %s", b.name, v.Type().Elem())
	}
	for _, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("backend %s: Constant: negative dimension in %v", b.name, dims)
		}
	}
	shape := shapes.Make(dtype, dims...)
	if shape.Size() != v.Len() {
		return nil, fmt.Errorf("backend %s: Constant: %d values for shape %s", b.name, v.Len(), shape)
	}
	n := b.newNode(shape)
	n.konst = flat
	return n, nil
}

// DistributedSPMD implements backends.Builder: not supported on one CPU.
func (b *stagedBuilder) DistributedSPMD(numDevices int) error {
	return fmt.Errorf("backend %s: distributed execution is not supported by the pure-Go backend", b.name)
}

// DistributedAutoSharding implements backends.Builder: not supported on one CPU.
func (b *stagedBuilder) DistributedAutoSharding(meshes ...backends.Mesh) error {
	return fmt.Errorf("backend %s: distributed execution is not supported by the pure-Go backend", b.name)
}

// DeviceAssignment implements backends.Builder: only device 0 exists.
func (b *stagedBuilder) DeviceAssignment(devices ...backends.DeviceNum) error {
	for _, d := range devices {
		if d != 0 {
			return fmt.Errorf("backend %s: device %d does not exist (the pure-Go backend has only device 0)", b.name, d)
		}
	}
	return nil
}

// Dot implements backends.Builder as simplego does: through DotGeneral.
func (b *stagedBuilder) Dot(lhs, rhs backends.Op) (backends.Op, error) {
	l, err := b.node(lhs)
	if err != nil {
		return nil, err
	}
	r, err := b.node(rhs)
	if err != nil {
		return nil, err
	}
	switch {
	case l.shape.Rank() == 1 && r.shape.Rank() == 1:
		return b.DotGeneral(lhs, []int{0}, nil, rhs, []int{0}, nil)
	case l.shape.Rank() == 2 && (r.shape.Rank() == 1 || r.shape.Rank() == 2):
		return b.DotGeneral(lhs, []int{1}, nil, rhs, []int{0}, nil)
	}
	return nil, fmt.Errorf("backend %s: Dot operands have invalid ranks: lhs=%s, rhs=%s", b.name, l.shape, r.shape)
}

// DotGeneral implements backends.Builder. Float32 products become a stage of
// their own, run by gemm; anything else (other dtypes, invalid axes, which
// simplego reports) goes to simplego.
func (b *stagedBuilder) DotGeneral(lhsOp backends.Op, lhsContractingAxes, lhsBatchAxes []int, rhsOp backends.Op, rhsContractingAxes, rhsBatchAxes []int) (backends.Op, error) {
	lhs, err := b.node(lhsOp)
	if err != nil {
		return nil, err
	}
	rhs, err := b.node(rhsOp)
	if err != nil {
		return nil, err
	}
	lc, lok := normalizeAxes(lhs.shape.Rank(), lhsContractingAxes)
	lb, lbok := normalizeAxes(lhs.shape.Rank(), lhsBatchAxes)
	rc, rok := normalizeAxes(rhs.shape.Rank(), rhsContractingAxes)
	rb, rbok := normalizeAxes(rhs.shape.Rank(), rhsBatchAxes)
	valid := lok && lbok && rok && rbok &&
		lhs.shape.DType == dtypes.Float32 && rhs.shape.DType == dtypes.Float32 &&
		len(lc) == len(rc) && len(lb) == len(rb) &&
		disjoint(lc, lb) && disjoint(rc, rb)
	for i := 0; valid && i < len(lc); i++ {
		valid = lhs.shape.Dimensions[lc[i]] == rhs.shape.Dimensions[rc[i]]
	}
	for i := 0; valid && i < len(lb); i++ {
		valid = lhs.shape.Dimensions[lb[i]] == rhs.shape.Dimensions[rb[i]]
	}
	if !valid {
		return b.simplegoDotGeneral(lhsOp, lhsContractingAxes, lhsBatchAxes, rhsOp, rhsContractingAxes, rhsBatchAxes)
	}
	lx := crossAxes(lhs.shape.Rank(), lc, lb)
	rx := crossAxes(rhs.shape.Rank(), rc, rb)
	var dims []int
	for _, a := range lb {
		dims = append(dims, lhs.shape.Dimensions[a])
	}
	for _, a := range lx {
		dims = append(dims, lhs.shape.Dimensions[a])
	}
	for _, a := range rx {
		dims = append(dims, rhs.shape.Dimensions[a])
	}
	lhsBatch, lhsCross, lhsContract := offsetTable(lhs.shape, lb), offsetTable(lhs.shape, lx), offsetTable(lhs.shape, lc)
	rhsBatch, rhsCross, rhsContract := offsetTable(rhs.shape, rb), offsetTable(rhs.shape, rx), offsetTable(rhs.shape, rc)
	mul := b.backend.mul
	return b.hostNode(shapes.Make(dtypes.Float32, dims...), &hostOp{
		name:   fmt.Sprintf("DotGeneral %s x %s", lhs.shape, rhs.shape),
		inputs: []*node{lhs, rhs},
		run: func(in []any, out any) error {
			return mul.MatMul(out.([]float32),
				gemm.Operand{Data: in[0].([]float32), Batch: lhsBatch, Cross: lhsCross, Contract: lhsContract},
				gemm.Operand{Data: in[1].([]float32), Batch: rhsBatch, Cross: rhsCross, Contract: rhsContract})
		},
	}), nil
}

// hostNode adds a host op as a stage of its own.
func (b *stagedBuilder) hostNode(shape shapes.Shape, op *hostOp) *node {
	n := b.newNode(shape)
	n.host = op
	b.cur = nil
	b.stages = append(b.stages, &stage{index: len(b.stages), host: n})
	return n
}

// simplegoDotGeneral runs a DotGeneral in the current stage with simplego.
func (b *stagedBuilder) simplegoDotGeneral(lhs backends.Op, lhsContractingAxes, lhsBatchAxes []int, rhs backends.Op, rhsContractingAxes, rhsBatchAxes []int) (backends.Op, error) {
	s, err := b.stage()
	if err != nil {
		return nil, err
	}
	l, r := b.in(s, lhs), b.in(s, rhs)
	if err := b.takeErr(); err != nil {
		return nil, err
	}
	op, err := s.builder.DotGeneral(l, slices.Clone(lhsContractingAxes), slices.Clone(lhsBatchAxes),
		r, slices.Clone(rhsContractingAxes), slices.Clone(rhsBatchAxes))
	if err != nil {
		return nil, err
	}
	return b.out(s, op), nil
}

// normalizeAxes maps negative axes to positive ones and checks the range and
// that no axis repeats.
func normalizeAxes(rank int, axes []int) ([]int, bool) {
	out := make([]int, len(axes))
	for i, a := range axes {
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank || slices.Contains(out[:i], a) {
			return nil, false
		}
		out[i] = a
	}
	return out, true
}

func disjoint(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// offsetTable lists, for every index of the combined axes (row-major over
// axes in the given order), the offset of that index in a row-major array of
// the given shape.
func offsetTable(shape shapes.Shape, axes []int) []int {
	strides := make([]int, shape.Rank())
	s := 1
	for a := shape.Rank() - 1; a >= 0; a-- {
		strides[a] = s
		s *= shape.Dimensions[a]
	}
	table := []int{0}
	for _, a := range axes {
		dim, stride := shape.Dimensions[a], strides[a]
		next := make([]int, 0, len(table)*dim)
		for _, base := range table {
			for i := range dim {
				next = append(next, base+i*stride)
			}
		}
		table = next
	}
	return table
}

// Compile implements backends.Builder: it compiles every stage that
// contributes to outputs and plans when each intermediate buffer is freed.
func (b *stagedBuilder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	if len(shardings) != 0 {
		return nil, fmt.Errorf("backend %s: sharding is not supported by the pure-Go backend", b.name)
	}
	e := &stagedExec{backend: b.backend, params: b.params, numNodes: len(b.nodes)}
	for _, op := range outputs {
		n, err := b.node(op)
		if err != nil {
			return nil, err
		}
		e.outputs = append(e.outputs, n)
	}

	// Backward liveness over the ops: a node is needed when an output
	// depends on it. A stage runs when it computes something needed; its
	// parameters that nothing needed reads get a placeholder buffer.
	needed := make([]bool, len(b.nodes))
	for _, n := range e.outputs {
		needed[n.id] = true
	}
	stageOuts := make([][]*node, len(b.stages))
	for _, n := range b.nodes {
		if n.stage != nil {
			stageOuts[n.stage.index] = append(stageOuts[n.stage.index], n)
		}
	}
	// simplego sizes its per-run tables by the last output node and indexes
	// them by parameter node: a parameter created after every output (read
	// only by dead ops) would be out of range. The stage's last node then
	// becomes an extra output, computed and discarded (extra).
	extra := make([]bool, len(b.stages))
	for {
		for i := len(b.nodes) - 1; i >= 0; i-- {
			n := b.nodes[i]
			if !needed[i] {
				continue
			}
			deps := n.deps
			if n.host != nil {
				deps = n.host.inputs
			}
			for _, d := range deps {
				needed[d.id] = true
			}
		}
		changed := false
		for i, s := range b.stages {
			if s.host != nil || len(stageOuts[i]) == 0 {
				continue
			}
			lastNeeded := -1
			for _, n := range stageOuts[i] {
				if needed[n.id] {
					lastNeeded = n.id
				}
			}
			if last := stageOuts[i][len(stageOuts[i])-1]; lastNeeded >= 0 && lastNeeded < s.nextAfterImport && last.id >= s.nextAfterImport {
				needed[last.id], extra[i], changed = true, true, true
			}
		}
		if !changed {
			break
		}
	}
	live := make([]*plannedStep, len(b.stages))
	for i, s := range b.stages {
		if s.host != nil {
			if needed[s.host.id] {
				live[i] = &plannedStep{host: s.host, inputs: s.host.host.inputs}
			}
			continue
		}
		var outs []*node
		for _, n := range stageOuts[i] {
			if needed[n.id] {
				outs = append(outs, n)
			}
		}
		if len(outs) == 0 {
			continue
		}
		p := &plannedStep{stage: s, inputs: s.order, outputs: outs}
		if extra[i] {
			p.discard = len(outs) - 1
		}
		for j, n := range s.order {
			if !needed[n.id] {
				if p.unread == nil {
					p.unread = make([]bool, len(s.order))
				}
				p.unread[j] = true
			}
		}
		live[i] = p
	}
	for _, p := range live {
		if p == nil {
			continue
		}
		if p.stage != nil {
			ops := make([]backends.Op, len(p.outputs))
			for j, n := range p.outputs {
				ops[j] = n.inner
			}
			exec, err := p.stage.builder.Compile(ops, nil)
			if err != nil {
				return nil, fmt.Errorf("backend %s: compile stage %d: %w", b.name, p.stage.index, err)
			}
			p.exec = exec
		}
		e.steps = append(e.steps, p)
	}

	// Last use of every node; outputs are never freed.
	e.lastUse = make([]int, len(b.nodes))
	for i := range e.lastUse {
		e.lastUse[i] = -1
	}
	for i, p := range e.steps {
		for j, n := range p.inputs {
			if p.unread == nil || !p.unread[j] {
				e.lastUse[n.id] = i
			}
		}
	}
	e.isOutput = make([]bool, len(b.nodes))
	for _, n := range e.outputs {
		e.isOutput[n.id] = true
	}
	return e, nil
}

// plannedStep is a stage that runs, with its inputs and outputs.
type plannedStep struct {
	stage   *stage
	exec    backends.Executable
	host    *node
	inputs  []*node
	outputs []*node
	discard int // outputs from this index on are not needed; 0 means none
	// unread marks the stage's parameters that no needed op reads: they
	// get a placeholder buffer (nil when there are none).
	unread []bool
}

// stagedExec implements backends.Executable for goBackend.
type stagedExec struct {
	backend   *goBackend
	params    []*node
	outputs   []*node
	steps     []*plannedStep
	numNodes  int
	lastUse   []int
	isOutput  []bool
	finalized bool
}

// Finalize implements backends.Executable.
func (e *stagedExec) Finalize() {
	for _, p := range e.steps {
		if p.exec != nil {
			p.exec.Finalize()
		}
	}
	e.steps = nil
	e.finalized = true
}

// Inputs implements backends.Executable.
func (e *stagedExec) Inputs() (names []string, inputShapes []shapes.Shape) {
	for _, p := range e.params {
		names = append(names, p.name)
		inputShapes = append(inputShapes, p.shape)
	}
	return names, inputShapes
}

// Outputs implements backends.Executable.
func (e *stagedExec) Outputs() []shapes.Shape {
	out := make([]shapes.Shape, len(e.outputs))
	for i, n := range e.outputs {
		out[i] = n.shape
	}
	return out
}

// Execute implements backends.Executable: it runs the stages in order,
// donating each intermediate buffer to its last reader.
func (e *stagedExec) Execute(inputs []backends.Buffer, donate []bool, _ backends.DeviceNum) ([]backends.Buffer, error) {
	if e.finalized {
		return nil, fmt.Errorf("backend: executable was finalized")
	}
	if len(inputs) != len(e.params) {
		return nil, fmt.Errorf("backend: expected %d inputs, got %d", len(e.params), len(inputs))
	}
	be := e.backend.Backend
	vals := make([]backends.Buffer, e.numNodes)
	owned := make([]bool, e.numNodes) // ours to donate or free
	for i, p := range e.params {
		shape, err := be.BufferShape(inputs[i])
		if err != nil {
			return nil, fmt.Errorf("backend: input #%d: %w", i, err)
		}
		if !shape.Equal(p.shape) {
			return nil, fmt.Errorf("backend: input #%d has shape %s, want %s", i, shape, p.shape)
		}
		vals[p.id] = inputs[i]
		owned[p.id] = i < len(donate) && donate[i]
	}
	release := func(step int, n *node) bool {
		return owned[n.id] && e.lastUse[n.id] == step && !e.isOutput[n.id]
	}
	for si, p := range e.steps {
		if p.exec != nil {
			ins := make([]backends.Buffer, len(p.inputs))
			don := make([]bool, len(p.inputs))
			for j, n := range p.inputs {
				if p.unread != nil && p.unread[j] {
					// Never read: any buffer of the shape, donated so that
					// simplego frees it.
					buf, _, err := be.NewSharedBuffer(0, n.shape)
					if err != nil {
						return nil, err
					}
					ins[j], don[j] = buf, true
					continue
				}
				ins[j] = vals[n.id]
				if release(si, n) {
					don[j] = true
					vals[n.id] = nil
				}
			}
			outs, err := p.exec.Execute(ins, don, 0)
			if err != nil {
				return nil, err
			}
			for j, n := range p.outputs {
				if p.discard > 0 && j >= p.discard {
					if err := be.BufferFinalize(outs[j]); err != nil {
						return nil, err
					}
					continue
				}
				vals[n.id], owned[n.id] = outs[j], true
			}
			continue
		}
		in, out, err := e.hostBuffers(si, p, vals, owned, release)
		if err != nil {
			return nil, err
		}
		if err := p.host.host.run(in, out); err != nil {
			return nil, fmt.Errorf("backend: %s: %w", p.host.host.name, err)
		}
		if err := e.releaseInputs(si, p, vals, release); err != nil {
			return nil, err
		}
	}

	results := make([]backends.Buffer, len(e.outputs))
	returned := make([]bool, e.numNodes)
	for i, n := range e.outputs {
		if n.konst != nil {
			c, err := be.BufferFromFlatData(0, n.konst, n.shape)
			if err != nil {
				return nil, err
			}
			results[i] = c
			continue
		}
		buf := vals[n.id]
		if buf == nil {
			return nil, fmt.Errorf("backend: output #%d was not computed", i)
		}
		if returned[n.id] || !owned[n.id] {
			c, err := cloneBuffer(be, buf)
			if err != nil {
				return nil, err
			}
			buf = c
		}
		returned[n.id] = true
		results[i] = buf
	}
	// Donated inputs nobody consumed are freed, as simplego does.
	for _, p := range e.params {
		if owned[p.id] && vals[p.id] != nil && !returned[p.id] && !e.isOutput[p.id] {
			if err := be.BufferFinalize(vals[p.id]); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// cloneBuffer copies a buffer.
func cloneBuffer(be *simplego.Backend, buf backends.Buffer) (backends.Buffer, error) {
	shape, err := be.BufferShape(buf)
	if err != nil {
		return nil, err
	}
	src, err := be.BufferData(buf)
	if err != nil {
		return nil, err
	}
	c, dst, err := be.NewSharedBuffer(0, shape)
	if err != nil {
		return nil, err
	}
	reflect.Copy(reflect.ValueOf(dst), reflect.ValueOf(src))
	return c, nil
}

// hostBuffers returns the inputs' storage of host step p (index si) and
// its output's, recording the output buffer in vals: the buffer of an input
// read here for the last time when the op allows it, otherwise a pooled
// one.
func (e *stagedExec) hostBuffers(si int, p *plannedStep, vals []backends.Buffer, owned []bool,
	release func(step int, n *node) bool) (in []any, out any, err error) {
	be := e.backend.Backend
	h := p.host.host
	in = make([]any, len(h.inputs))
	for j, n := range h.inputs {
		if n.konst != nil {
			in[j] = n.konst
			continue
		}
		if in[j], err = be.BufferData(vals[n.id]); err != nil {
			return nil, nil, fmt.Errorf("backend: %s: %w", h.name, err)
		}
	}
	var buf backends.Buffer
	for _, j := range h.alias {
		if n := h.inputs[j]; n.konst == nil && release(si, n) && vals[n.id] != nil {
			buf, vals[n.id] = vals[n.id], nil
			break
		}
	}
	if buf == nil {
		buf, out, err = be.NewSharedBuffer(0, p.host.shape)
	} else {
		out, err = be.BufferData(buf)
	}
	if err != nil {
		return nil, nil, err
	}
	vals[p.host.id], owned[p.host.id] = buf, true
	return in, out, nil
}

// releaseInputs frees the inputs host step p (index si) read for the last
// time.
func (e *stagedExec) releaseInputs(si int, p *plannedStep, vals []backends.Buffer, release func(step int, n *node) bool) error {
	for _, n := range p.inputs {
		if release(si, n) && vals[n.id] != nil {
			if err := e.backend.Backend.BufferFinalize(vals[n.id]); err != nil {
				return err
			}
			vals[n.id] = nil
		}
	}
	return nil
}
