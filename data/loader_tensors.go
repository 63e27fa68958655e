package data

import "github.com/gomlx/gomlx/pkg/core/tensors"

// PixelsTensor copies the batch's pixels into a float32 tensor of shape
// PixelShape(); nil when the batch has no pixels.
func (b *Batch) PixelsTensor() *tensors.Tensor {
	if b.Pixels == nil {
		return nil
	}
	return tensors.FromFlatDataAndDimensions(b.Pixels[:b.N*3*b.Size*b.Size], b.PixelShape()...)
}

// InputIDsTensor copies the batch's input ids into an int32 tensor of
// shape (N, ContextLength); nil when the batch has none.
func (b *Batch) InputIDsTensor() *tensors.Tensor {
	if b.InputIDs == nil {
		return nil
	}
	return tensors.FromFlatDataAndDimensions(b.InputIDs[:b.N*b.ContextLength], b.N, b.ContextLength)
}

// LabelsTensor copies the batch's labels into an int32 tensor of shape
// (N); nil when the batch has none.
func (b *Batch) LabelsTensor() *tensors.Tensor {
	if b.Labels == nil {
		return nil
	}
	return tensors.FromFlatDataAndDimensions(b.Labels[:b.N], b.N)
}
