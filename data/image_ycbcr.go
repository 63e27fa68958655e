package data

import (
	"image"
	"sync"
)

// libjpegTables holds libjpeg's (jdcolor.c) fixed-point Y'CbCr -> RGB terms,
// indexed by the 8-bit Cb or Cr sample, with limitBias added to the red and
// blue terms so that Y plus a term indexes limit directly.
type libjpegTables struct {
	crR, cbB, crG, cbG [256]int32
	// limit clamps v-limitBias to 0..255 (libjpeg's range_limit).
	limit [1024]uint8
}

const limitBias = 384

// jpegColorTables returns the immutable libjpeg conversion tables, built once.
var jpegColorTables = sync.OnceValue(func() *libjpegTables {
	const scaleBits = 16
	const oneHalf = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	t := &libjpegTables{}
	for i := range 256 {
		x := int32(i - 128)
		t.crR[i] = (fix(1.40200)*x+oneHalf)>>scaleBits + limitBias
		t.cbB[i] = (fix(1.77200)*x+oneHalf)>>scaleBits + limitBias
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + oneHalf
	}
	for i := range t.limit {
		t.limit[i] = clampPixel(i - limitBias)
	}
	return t
})

// jpegYCbCrToRGB converts a JFIF Y'CbCr image into out (already sized) the
// way libjpeg-turbo does by default: chroma is upsampled with its "fancy"
// triangle filters (h2v1, h1v2, h2v2; box replication otherwise) and
// converted with its fixed-point tables.
func jpegYCbCrToRGB(m *image.YCbCr, out *RGBImage) {
	w, h := out.Width, out.Height
	t := jpegColorTables()
	var hs, vs int // horizontal and vertical subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio422:
		hs, vs = 2, 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		hs, vs = 1, 2
	case image.YCbCrSubsampleRatio411:
		hs, vs = 4, 1
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	}
	cw := (w + hs - 1) / hs // libjpeg's downsampled_width
	ch := (h + vs - 1) / vs
	// Fancy h2 upsampling needs more than two chroma columns; fancy v2 is
	// used only with h1 or h2.
	fancyH := hs == 2 && cw > 2
	fancyV := vs == 2 && (hs == 1 || fancyH)
	cbRow := make([]uint8, 2*cw+4)
	crRow := make([]uint8, 2*cw+4)
	colsum := make([]int32, cw)
	for y := 0; y < h; y++ {
		cy := y / vs
		fy := cy
		if fancyV {
			fy = cy - 1
			if y%2 == 1 {
				fy = cy + 1
			}
			fy = max(0, min(fy, ch-1))
		}
		var cb, cr []uint8
		if hs == 1 && vs == 1 {
			cb, cr = m.Cb[cy*m.CStride:cy*m.CStride+w], m.Cr[cy*m.CStride:cy*m.CStride+w]
		} else {
			for c, plane := range [2][]uint8{m.Cb, m.Cr} {
				row := cbRow
				if c == 1 {
					row = crRow
				}
				near := plane[cy*m.CStride : cy*m.CStride+cw]
				far := plane[fy*m.CStride : fy*m.CStride+cw]
				upsampleChromaRow(row, near, far, colsum, hs, fancyH, fancyV, y%2 == 1)
			}
			cb, cr = cbRow[:w], crRow[:w]
		}
		ycbcrRowToRGB(out.Pix[3*w*y:3*w*(y+1)], m.Y[y*m.YStride:y*m.YStride+w], cb, cr, t)
	}
}

// upsampleChromaRow fills row (at least hs*len(near) long) with one output
// row of chroma from the nearer and farther downsampled rows, using
// libjpeg-turbo's h2v2, h1v2 or h2v1 fancy filters or box replication.
func upsampleChromaRow(row, near, far []uint8, colsum []int32, hs int, fancyH, fancyV, lower bool) {
	cw := len(near)
	if fancyV {
		// 3/4 of the nearer row plus 1/4 of the farther one.
		far = far[:cw]
		colsum = colsum[:cw]
		for i := range colsum {
			colsum[i] = 3*int32(near[i]) + int32(far[i])
		}
		if hs == 1 {
			bias := int32(1)
			if lower {
				bias = 2
			}
			row = row[:cw]
			for i, s := range colsum {
				row[i] = uint8((s + bias) >> 2)
			}
			return
		}
		row[0] = uint8((colsum[0]*4 + 8) >> 4)
		row[1] = uint8((colsum[0]*3 + colsum[1] + 7) >> 4)
		for i := 1; i < cw-1; i++ {
			s := colsum[i] * 3
			o := row[2*i : 2*i+2 : 2*i+2]
			o[0] = uint8((s + colsum[i-1] + 8) >> 4)
			o[1] = uint8((s + colsum[i+1] + 7) >> 4)
		}
		row[2*cw-2] = uint8((colsum[cw-1]*3 + colsum[cw-2] + 8) >> 4)
		row[2*cw-1] = uint8((colsum[cw-1]*4 + 7) >> 4)
		return
	}
	if fancyH {
		row[0] = near[0]
		row[1] = uint8((int32(near[0])*3 + int32(near[1]) + 2) >> 2)
		for i := 1; i < cw-1; i++ {
			s := int32(near[i]) * 3
			o := row[2*i : 2*i+2 : 2*i+2]
			o[0] = uint8((s + int32(near[i-1]) + 1) >> 2)
			o[1] = uint8((s + int32(near[i+1]) + 2) >> 2)
		}
		row[2*cw-2] = uint8((int32(near[cw-1])*3 + int32(near[cw-2]) + 1) >> 2)
		row[2*cw-1] = near[cw-1]
		return
	}
	for i, v := range near {
		for j := range hs {
			row[hs*i+j] = v
		}
	}
}

// ycbcrRowToRGB converts one row with libjpeg's ycc_rgb_convert.
func ycbcrRowToRGB(d, ys, cb, cr []uint8, t *libjpegTables) {
	cb, cr = cb[:len(ys)], cr[:len(ys)]
	d = d[:3*len(ys)]
	for x, yv := range ys {
		yy := int32(yv)
		b, r := cb[x], cr[x]
		p := d[3*x : 3*x+3 : 3*x+3]
		p[0] = t.limit[uint32(yy+t.crR[r])&1023]
		p[1] = t.limit[uint32(yy+limitBias+(t.cbG[b]+t.crG[r])>>16)&1023]
		p[2] = t.limit[uint32(yy+t.cbB[b])&1023]
	}
}

// webpYCbCrToRGB converts a lossy WebP (VP8, 4:2:0, limited-range BT.601)
// frame to RGB as libwebp's default decoder does: its "fancy" upsampler
// (EmitFancyRGB) and its 14-bit fixed-point YUV -> RGB conversion.
func webpYCbCrToRGB(m *image.YCbCr, buf []uint8) *RGBImage {
	r := m.Bounds()
	w, h := r.Dx(), r.Dy()
	out := reuseRGBImage(w, h, buf)
	uvRow := func(cy int) ([]uint8, []uint8) {
		o := cy * m.CStride
		n := (w + 1) / 2
		return m.Cb[o : o+n], m.Cr[o : o+n]
	}
	yRow := func(y int) []uint8 { return m.Y[y*m.YStride : y*m.YStride+w] }
	dstRow := func(y int) []uint8 { return out.Pix[3*w*y : 3*w*(y+1)] }
	// First row: chroma mirrored at the boundary.
	u0, v0 := uvRow(0)
	webpUpsamplePair(yRow(0), nil, u0, v0, u0, v0, dstRow(0), nil, w)
	y := 0
	for ; y+2 < h; y += 2 {
		tu, tv := uvRow(y / 2)
		cu, cv := uvRow(y/2 + 1)
		webpUpsamplePair(yRow(y+1), yRow(y+2), tu, tv, cu, cv, dstRow(y+1), dstRow(y+2), w)
	}
	if h%2 == 0 {
		cu, cv := uvRow((h - 1) / 2)
		webpUpsamplePair(yRow(h-1), nil, cu, cv, cu, cv, dstRow(h-1), nil, w)
	}
	return out
}

// webpUpsamplePair is libwebp's UpsampleRgbLinePair: it interpolates the
// chroma of two output rows from two chroma rows (top and current) and
// converts them. bottomY and bottomDst may be nil for a single row.
func webpUpsamplePair(topY, bottomY, topU, topV, curU, curV, topDst, bottomDst []uint8, n int) {
	last := (n - 1) >> 1
	tlU, tlV := int(topU[0]), int(topV[0])
	lU, lV := int(curU[0]), int(curV[0])
	webpPixel(topY[0], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[0:3])
	if bottomY != nil {
		webpPixel(bottomY[0], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, bottomDst[0:3])
	}
	for x := 1; x <= last; x++ {
		tU, tV := int(topU[x]), int(topV[x])
		U, V := int(curU[x]), int(curV[x])
		avgU := tlU + tU + lU + U + 8
		avgV := tlV + tV + lV + V + 8
		d12U, d12V := (avgU+2*(tU+lU))>>3, (avgV+2*(tV+lV))>>3
		d03U, d03V := (avgU+2*(tlU+U))>>3, (avgV+2*(tlV+V))>>3
		webpPixel(topY[2*x-1], (d12U+tlU)>>1, (d12V+tlV)>>1, topDst[3*(2*x-1):])
		if 2*x < n {
			webpPixel(topY[2*x], (d03U+tU)>>1, (d03V+tV)>>1, topDst[3*2*x:])
		}
		if bottomY != nil {
			webpPixel(bottomY[2*x-1], (d03U+lU)>>1, (d03V+lV)>>1, bottomDst[3*(2*x-1):])
			if 2*x < n {
				webpPixel(bottomY[2*x], (d12U+U)>>1, (d12V+V)>>1, bottomDst[3*2*x:])
			}
		}
		tlU, tlV, lU, lV = tU, tV, U, V
	}
	if n%2 == 0 {
		webpPixel(topY[n-1], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[3*(n-1):])
		if bottomY != nil {
			webpPixel(bottomY[n-1], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, bottomDst[3*(n-1):])
		}
	}
}

// webpPixel is libwebp's VP8YuvToRgb.
func webpPixel(y uint8, u, v int, dst []uint8) {
	mulHi := func(a, c int) int { return (a * c) >> 8 }
	clip := func(x int) uint8 {
		const mask = (256 << 6) - 1
		if x&^mask == 0 {
			return uint8(x >> 6)
		}
		if x < 0 {
			return 0
		}
		return 255
	}
	yy := mulHi(int(y), 19077)
	dst[0] = clip(yy + mulHi(v, 26149) - 14234)
	dst[1] = clip(yy - mulHi(u, 6419) - mulHi(v, 13320) + 8708)
	dst[2] = clip(yy + mulHi(u, 33050) - 17685)
}
