package data

import (
	"fmt"
	"image"
)

// deflateMaxRatio bounds the expansion of a deflate stream: a 258-byte
// match costs at least 2 bits, so at most 1032 bytes come out per byte in;
// rounded up.
const deflateMaxRatio = 1100

// checkEncodedSize rejects an image whose header claims more pixels than
// its encoded bytes could possibly hold. The standard decoders allocate the
// whole pixel buffer from the header before reading any pixel data, so
// without this a 54-byte BMP claiming 13000x13000 pixels (under
// MaxImagePixels) allocated 676 MB, and a 72-byte PNG or a 700-byte JPEG
// 169 MB (1.35 GB for 16-bit RGBA PNG), before failing on the missing data
// (caught by TestDecodeImageHugeHeaders). Such files are truncated and
// Pillow refuses them too ("image file is truncated").
//
// GIF and WebP are not checked: a tiny GIF may legitimately declare a large
// logical screen, and WebP's arithmetic and lossless codings can describe a
// large flat image in a few bytes. Their allocations stay bounded by
// MaxImagePixels.
func checkEncodedSize(format ImageFormat, cfg image.Config, size int) error {
	w, h, n := int64(cfg.Width), int64(cfg.Height), int64(size)
	var need int64 // least number of bytes a complete file needs
	switch format {
	case FormatPNG:
		// Each row holds a filter byte and at least one bit per pixel.
		need = h * (1 + (w+7)/8) / deflateMaxRatio
	case FormatJPEG:
		// Every 8x8 block of the full-resolution component costs at least
		// one bit (its DC code) in some scan.
		need = ((w + 7) / 8) * ((h + 7) / 8) / 8
	case FormatBMP:
		// x/image/bmp reads only uncompressed BMPs: rows of at least one
		// bit per pixel, padded to 4 bytes.
		need = h * 4 * ((w + 31) / 32)
	default:
		return nil
	}
	if n < need {
		return fmt.Errorf("header claims %dx%d pixels but the file has only %d bytes, fewer than the %d such an image needs (truncated?)", w, h, n, need)
	}
	return nil
}
