package train

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gopjrt/dtypes"
	"github.com/qatclip/qatclip/layers/clip"
)

// MaxLogitScale is the largest logit scale (log of the inverse
// temperature) used in losses: ln(100), as CLIP clamps it.
const MaxLogitScale = 4.605170185988092

// ClampLogitScale limits a logit-scale node to at most ln 100. The
// gradient passes where ls <= ln 100 (so a scale sitting at the bound can
// still move down).
func ClampLogitScale(ls *Node) *Node {
	bound := Scalar(ls.Graph(), ls.DType(), MaxLogitScale)
	return Where(GreaterThan(ls, bound), BroadcastToShape(bound, ls.Shape()), ls)
}

// diagonal returns the diagonal of the square matrix m [N, N] as [N].
func diagonal(m *Node) *Node {
	g := m.Graph()
	eye := ConvertDType(Equal(Iota(g, m.Shape(), 0), Iota(g, m.Shape(), 1)), m.DType())
	return ReduceSum(Mul(m, eye), 1)
}

// ContrastiveLoss is CLIP's symmetric cross-entropy over the batch
// similarity matrix: logits [N, N] = logits_per_image (row i: image i
// against every text), the matching pair of row i in column i. It returns
// (CE over rows + CE over columns) / 2, each the mean over the batch.
func ContrastiveLoss(logits *Node) *Node {
	rows := Neg(ReduceAllMean(diagonal(LogSoftmax(logits, 1))))
	cols := Neg(ReduceAllMean(diagonal(LogSoftmax(logits, 0))))
	return MulScalar(Add(rows, cols), 0.5)
}

// klRows returns the batch mean of KL(softmax(t) || softmax(s)) along axis.
func klRows(t, s *Node, axis int) *Node {
	lt := LogSoftmax(t, axis)
	ls := LogSoftmax(s, axis)
	kl := ReduceSum(Mul(Exp(lt), Sub(lt, ls)), axis)
	return ReduceAllMean(kl)
}

// DistillLogitsLoss is the distillation loss between teacher and student
// similarity matrices [N, M] (logits_per_image of each): the KL divergence
// KL(teacher || student) of the softmax distributions at temperature
// temp, over texts for each image (rows) and over images for each text
// (columns), averaged, times temp^2 (so gradients keep their size across
// temperatures). The teacher side gets no gradient.
func DistillLogitsLoss(teacher, student *Node, temp float64) *Node {
	t := StopGradient(DivScalar(teacher, temp))
	s := DivScalar(student, temp)
	kl := MulScalar(Add(klRows(t, s, 1), klRows(t, s, 0)), 0.5)
	return MulScalar(kl, temp*temp)
}

// cosineDistance returns the batch mean of 1 - cos(a_i, b_i) for rows of a
// and b [N, D].
func cosineDistance(a, b *Node) *Node {
	cos := ReduceSum(Mul(clip.L2Normalize(a), clip.L2Normalize(b)), -1)
	return OneMinus(ReduceAllMean(cos))
}

// DistillFeaturesLoss is the feature distillation loss: the mean of
// 1 - cos(student, teacher) over image embeddings and over text
// embeddings, averaged over the two towers. The teacher side gets no
// gradient.
func DistillFeaturesLoss(tImg, tTxt, sImg, sTxt *Node) *Node {
	return MulScalar(Add(cosineDistance(sImg, StopGradient(tImg)), cosineDistance(sTxt, StopGradient(tTxt))), 0.5)
}

// ClassificationLoss is the cross-entropy of a frozen zero-shot head:
// logits = scale * normalize(img) @ head^T for image features img [N, D]
// and class embeddings head [C, D] (rows L2-normalised), against labels
// [N] (int32). Examples with a negative label are left out; the loss is
// the mean over the others (0 when there are none).
func ClassificationLoss(img, head, scale, labels *Node) *Node {
	g := img.Graph()
	c := head.Shape().Dim(0)
	cos := DotGeneral(clip.L2Normalize(img), []int{1}, nil, StopGradient(head), []int{1}, nil)
	logits := Mul(cos, scale)
	labels = ConvertDType(labels, dtypes.Int32)
	valid := GreaterOrEqual(labels, ScalarZero(g, dtypes.Int32))
	safe := Where(valid, labels, ZerosLike(labels))
	onehot := Mul(OneHot(safe, c, img.DType()), ExpandAxes(ConvertDType(valid, img.DType()), -1))
	nll := Neg(ReduceAllSum(Mul(onehot, LogSoftmax(logits, 1))))
	count := MaxScalar(ReduceAllSum(ConvertDType(valid, img.DType())), 1)
	return Div(nll, count)
}
