package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
)

// decodeGIF decodes the first frame of a GIF onto its logical screen as
// Pillow 9.4 does: the canvas is filled with the frame's transparent index
// (index 0 when it has none), the frame is drawn at its offset, and every
// index is looked up in the frame's own palette (local, else global), the
// transparent entry keeping its stored colour.
func decodeGIF(b []byte, cfg image.Config, buf []uint8) (*RGBImage, error) {
	pal, trans, err := gifFirstFramePalette(b)
	if err != nil {
		return nil, fmt.Errorf("decode gif: %w", err)
	}
	m, err := gif.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode gif: %w", err)
	}
	frame, ok := m.(*image.Paletted)
	if !ok {
		return toRGB(m, buf), nil
	}
	var lut [256][3]uint8
	for i := 0; i < 256 && 3*i+2 < len(pal); i++ {
		lut[i] = [3]uint8{pal[3*i], pal[3*i+1], pal[3*i+2]}
	}
	w, h := cfg.Width, cfg.Height
	out := reuseRGBImage(w, h, buf)
	fill := lut[0]
	if trans >= 0 {
		fill = lut[trans]
	}
	for i := 0; i < len(out.Pix); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = fill[0], fill[1], fill[2]
	}
	r := frame.Rect.Intersect(image.Rect(0, 0, w, h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		src := frame.Pix[frame.PixOffset(r.Min.X, y):frame.PixOffset(r.Max.X, y)]
		d := out.Pix[3*(y*w+r.Min.X) : 3*(y*w+r.Max.X)]
		for x, idx := range src {
			c := lut[idx]
			d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
		}
	}
	return out, nil
}

var errGIFShort = errors.New("truncated GIF header")

// gifFirstFramePalette walks the GIF blocks up to the first image
// descriptor and returns that frame's colour table as stored (local, else
// global) and its transparent index (-1 when none). image/gif hides the
// stored colour of the transparent entry, which Pillow keeps.
func gifFirstFramePalette(b []byte) (pal []byte, trans int, err error) {
	trans = -1
	if len(b) < 13 {
		return nil, -1, errGIFShort
	}
	var global []byte
	pos := 13
	if flags := b[10]; flags&0x80 != 0 {
		n := 3 << ((flags & 7) + 1)
		if pos+n > len(b) {
			return nil, -1, errGIFShort
		}
		global = b[pos : pos+n]
		pos += n
	}
	for pos < len(b) {
		switch b[pos] {
		case 0x21: // extension
			if pos+2 > len(b) {
				return nil, -1, errGIFShort
			}
			label := b[pos+1]
			pos += 2
			if label == 0xF9 && pos+5 <= len(b) && b[pos] == 4 {
				trans = -1
				if b[pos+1]&1 != 0 {
					trans = int(b[pos+4])
				}
			}
			for {
				if pos >= len(b) {
					return nil, -1, errGIFShort
				}
				n := int(b[pos])
				pos += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2C: // image descriptor
			if pos+10 > len(b) {
				return nil, -1, errGIFShort
			}
			if packed := b[pos+9]; packed&0x80 != 0 {
				n := 3 << ((packed & 7) + 1)
				if pos+10+n > len(b) {
					return nil, -1, errGIFShort
				}
				return b[pos+10 : pos+10+n], trans, nil
			}
			if global == nil {
				return nil, -1, errors.New("gif: no color table")
			}
			return global, trans, nil
		default:
			return nil, -1, fmt.Errorf("gif: unexpected block 0x%02x before the first frame", b[pos])
		}
	}
	return nil, -1, errors.New("gif: no image frame")
}
