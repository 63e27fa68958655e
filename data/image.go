package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// MaxImagePixels is the largest width*height DecodeImage accepts. It is
// Pillow's decompression-bomb error threshold (twice its warning limit), so a
// file Pillow refuses is refused here too, before any pixel memory is
// allocated.
const MaxImagePixels = 2 * 89478485

// ErrUnsupportedImageFormat is returned (wrapped) when the encoded bytes are
// none of JPEG, PNG, GIF, BMP or WebP.
var ErrUnsupportedImageFormat = errors.New("unsupported image format (want JPEG, PNG, GIF, BMP or WebP)")

// RGBImage is an 8-bit RGB image with interleaved, row-major pixels: the red,
// green and blue of pixel (x, y) are Pix[3*(y*Width+x)+0..2].
type RGBImage struct {
	Width, Height int
	Pix           []uint8
}

// NewRGBImage returns a zeroed width x height RGBImage.
func NewRGBImage(width, height int) *RGBImage {
	return &RGBImage{Width: width, Height: height, Pix: make([]uint8, 3*width*height)}
}

// ImageFormat names an encoded image format recognised by DecodeImage.
type ImageFormat string

// The image formats DecodeImage reads.
const (
	FormatJPEG ImageFormat = "jpeg"
	FormatPNG  ImageFormat = "png"
	FormatGIF  ImageFormat = "gif"
	FormatBMP  ImageFormat = "bmp"
	FormatWebP ImageFormat = "webp"
)

// SniffImageFormat returns the format of encoded image bytes from their
// leading magic number, or "" when it is none DecodeImage reads.
func SniffImageFormat(b []byte) ImageFormat {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF
	case bytes.HasPrefix(b, []byte("BM")):
		return FormatBMP
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return FormatWebP
	}
	return ""
}

// DecodeImageFile reads and decodes the image file at path; see DecodeImage.
// Errors name the file.
func DecodeImageFile(path string) (*RGBImage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	img, err := DecodeImage(b)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	return img, nil
}

// DecodeImageReader reads all of r and decodes it; see DecodeImage.
func DecodeImageReader(r io.Reader) (*RGBImage, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return DecodeImage(b)
}

// DecodeImage decodes a JPEG, PNG, GIF (first frame), BMP or WebP image and
// converts it to 8-bit RGB as Pillow 9.4's Image.open(f).convert("RGB")
// does:
//
//   - grey (L, 1, 2 and 4 bit) is replicated to the three channels;
//   - alpha (RGBA, LA, tRNS, palette transparency) is dropped, not
//     composited: the colour channels are kept as stored;
//   - palette images (PNG, GIF, BMP) look up the palette, transparent entries
//     included;
//   - 16-bit RGB(A) and LA keep the high byte; 16-bit greyscale PNG is opened
//     by Pillow as 32-bit integers, which convert("RGB") clamps to 0..255;
//   - CMYK JPEG uses Pillow's formula R = (255-K) - (C*(255-K))/255 with its
//     rounding;
//   - YCbCr JPEG is upsampled and converted like libjpeg(-turbo) with its
//     default "fancy" (triangle) chroma upsampling, and lossy WebP like
//     libwebp's fancy upsampler, so that only IDCT rounding differs from
//     Pillow.
func DecodeImage(b []byte) (*RGBImage, error) {
	return decodeImage(b, nil)
}

// reuseRGBImage returns a width x height RGBImage backed by buf when it is
// large enough (its contents are overwritten), else by new memory.
func reuseRGBImage(width, height int, buf []uint8) *RGBImage {
	n := 3 * width * height
	if cap(buf) < n {
		buf = make([]uint8, n)
	}
	return &RGBImage{Width: width, Height: height, Pix: buf[:n]}
}

// decodeImage is DecodeImage writing the pixels into buf when it is large
// enough.
func decodeImage(b []byte, buf []uint8) (*RGBImage, error) {
	return decodeImageLimit(b, buf, MaxImagePixels)
}

// decodeImageLimit is decodeImage refusing images of more than maxPixels
// pixels (MaxImagePixels for every caller but the fuzz test, which lowers
// it to keep each input cheap).
func decodeImageLimit(b []byte, buf []uint8, maxPixels int64) (*RGBImage, error) {
	format := SniffImageFormat(b)
	if format == "" {
		return nil, ErrUnsupportedImageFormat
	}
	cfg, err := decodeConfig(format, b)
	if err != nil {
		return nil, fmt.Errorf("decode %s header: %w", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("decode %s: empty image (%dx%d)", format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("decode %s: image is %dx%d, more than %d pixels", format, cfg.Width, cfg.Height, maxPixels)
	}
	if err := checkEncodedSize(format, cfg, len(b)); err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	switch format {
	case FormatGIF:
		return decodeGIF(b, cfg, buf)
	case FormatWebP:
		m, err := webp.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("decode webp: %w", err)
		}
		switch m := m.(type) {
		case *image.YCbCr:
			return webpYCbCrToRGB(m, buf), nil
		case *image.NYCbCrA:
			return webpYCbCrToRGB(&m.YCbCr, buf), nil
		}
		return toRGB(m, buf), nil
	}
	m, err := decodeStd(format, b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", format, err)
	}
	return toRGB(m, buf), nil
}

func decodeConfig(format ImageFormat, b []byte) (image.Config, error) {
	r := bytes.NewReader(b)
	switch format {
	case FormatJPEG:
		return jpeg.DecodeConfig(r)
	case FormatPNG:
		return png.DecodeConfig(r)
	case FormatGIF:
		return gif.DecodeConfig(r)
	case FormatBMP:
		return bmp.DecodeConfig(r)
	case FormatWebP:
		return webp.DecodeConfig(r)
	}
	return image.Config{}, ErrUnsupportedImageFormat
}

func decodeStd(format ImageFormat, b []byte) (image.Image, error) {
	r := bytes.NewReader(b)
	switch format {
	case FormatJPEG:
		return jpeg.Decode(r)
	case FormatPNG:
		return png.Decode(r)
	case FormatBMP:
		return bmp.Decode(r)
	}
	return nil, ErrUnsupportedImageFormat
}

// ToRGB converts a decoded image to RGB with Pillow's convert("RGB")
// semantics (see DecodeImage). YCbCr images are taken to be JPEG (JFIF)
// Y'CbCr and are upsampled like libjpeg. Common concrete types take fast
// paths; any other image.Image goes through its color model, dropping alpha
// after un-premultiplying.
func ToRGB(m image.Image) *RGBImage { return toRGB(m, nil) }

// toRGB is ToRGB writing into buf when it is large enough.
func toRGB(m image.Image, buf []uint8) *RGBImage {
	r := m.Bounds()
	w, h := r.Dx(), r.Dy()
	out := reuseRGBImage(w, h, buf)
	dst := out.Pix
	switch m := m.(type) {
	case *image.YCbCr:
		jpegYCbCrToRGB(m, out)
	case *image.Gray:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x, v := range src {
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		// Pillow opens 16-bit grey PNG as mode "I" (32-bit ints); its
		// I -> RGB conversion clamps the value to 0..255.
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+2*w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				v := uint8(255)
				if src[2*x] == 0 {
					v = src[2*x+1]
				}
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		}
	case *image.RGBA:
		// Decoders return RGBA only for opaque images, so the colour
		// channels are the stored ones.
		copyRGBFrom4(dst, m.Pix, m.Stride, w, h)
	case *image.NRGBA:
		copyRGBFrom4(dst, m.Pix, m.Stride, w, h)
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+8*w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = src[8*x], src[8*x+2], src[8*x+4]
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+8*w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				d[3*x], d[3*x+1], d[3*x+2] = src[8*x], src[8*x+2], src[8*x+4]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+4*w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				nk := 255 - int(src[4*x+3])
				d[3*x] = clampPixel(nk - mulDiv255(int(src[4*x]), nk))
				d[3*x+1] = clampPixel(nk - mulDiv255(int(src[4*x+1]), nk))
				d[3*x+2] = clampPixel(nk - mulDiv255(int(src[4*x+2]), nk))
			}
		}
	case *image.Paletted:
		lut := paletteRGB(m.Palette)
		for y := 0; y < h; y++ {
			src := m.Pix[y*m.Stride : y*m.Stride+w]
			d := dst[3*w*y : 3*w*(y+1)]
			for x, i := range src {
				c := lut[i]
				d[3*x], d[3*x+1], d[3*x+2] = c[0], c[1], c[2]
			}
		}
	default:
		i := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				c := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA)
				dst[i], dst[i+1], dst[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return out
}

// copyRGBFrom4 copies the first three of four interleaved 8-bit channels.
func copyRGBFrom4(dst, src []uint8, stride, w, h int) {
	for y := 0; y < h; y++ {
		s := src[y*stride : y*stride+4*w]
		d := dst[3*w*y : 3*w*(y+1)]
		for x := 0; x < w; x++ {
			p := s[4*x : 4*x+3 : 4*x+3]
			q := d[3*x : 3*x+3 : 3*x+3]
			q[0], q[1], q[2] = p[0], p[1], p[2]
		}
	}
}

// mulDiv255 is Pillow's MULDIV255: a*b/255 rounded, in integer arithmetic.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

func clampPixel(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// paletteRGB returns the RGB of every possible index, with the straight
// (not premultiplied) colour of transparent entries, as Pillow keeps them.
// Indices past the palette map to black, as in Pillow's zero-filled palette.
func paletteRGB(p color.Palette) *[256][3]uint8 {
	var lut [256][3]uint8
	for i, c := range p {
		if i >= 256 {
			break
		}
		switch c := c.(type) {
		case color.NRGBA:
			lut[i] = [3]uint8{c.R, c.G, c.B}
		case color.RGBA:
			if c.A == 255 {
				lut[i] = [3]uint8{c.R, c.G, c.B}
				continue
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		default:
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		}
	}
	return &lut
}
