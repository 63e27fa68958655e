#include "textflag.h"

// AVX2 element-wise float32 kernels (see ewkernel_amd64.go). Each takes
// func(out, a, b unsafe.Pointer, n int) with n a multiple of 8 and
// computes out[i] = a[i] op b[i] (VV), a[i] op *b (VS) or *a op b[i] (SV),
// 32 values per iteration, then 8. The operations round exactly as Go's
// scalar float32 ones do; Min and Max also follow Go's min and max: a NaN
// operand gives NaN, and min(-0, +0) = -0, max(-0, +0) = +0.

#define ARGS \
	MOVQ out+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), DX \
	MOVQ n+24(FP), CX

// VV_PLAIN(OP) is out[i] = a[i] OP b[i] for one VEX instruction OP.
#define VV_PLAIN(OP) \
	ARGS \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OP (DX), Y0, Y0 \
	OP 32(DX), Y1, Y1 \
	OP 64(DX), Y2, Y2 \
	OP 96(DX), Y3, Y3 \
	VMOVUPS Y0, (DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DX \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VMOVUPS (SI), Y0 \
	OP (DX), Y0, Y0 \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DX \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

// VS_PLAIN(OP) is out[i] = a[i] OP c with c = *b in Y15.
#define VS_PLAIN(OP) \
	ARGS \
	VBROADCASTSS (DX), Y15 \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OP Y15, Y0, Y0 \
	OP Y15, Y1, Y1 \
	OP Y15, Y2, Y2 \
	OP Y15, Y3, Y3 \
	VMOVUPS Y0, (DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VMOVUPS (SI), Y0 \
	OP Y15, Y0, Y0 \
	VMOVUPS Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

// SV_PLAIN(OP) is out[i] = c OP b[i] with c = *a in Y15 (b's pointer in DX).
#define SV_PLAIN(OP) \
	ARGS \
	VBROADCASTSS (SI), Y15 \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS (DX), Y0 \
	VMOVUPS 32(DX), Y1 \
	VMOVUPS 64(DX), Y2 \
	VMOVUPS 96(DX), Y3 \
	OP Y0, Y15, Y0 \
	OP Y1, Y15, Y1 \
	OP Y2, Y15, Y2 \
	OP Y3, Y15, Y3 \
	VMOVUPS Y0, (DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, DX \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VMOVUPS (DX), Y0 \
	OP Y0, Y15, Y0 \
	VMOVUPS Y0, (DI) \
	ADDQ $32, DX \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

// GOMINMAX(OP, COMBINE, A, B, T1, T2) leaves Go's min or max of A and B in
// B: OP (VMINPS or VMAXPS) returns its second operand on ties and NaNs;
// equal operands are replaced by COMBINE (VORPS for min: -0 wins; VANDPS
// for max: +0 wins) and a NaN in A by A.
#define GOMINMAX(OP, COMBINE, A, B, T1, T2) \
	VCMPPS $0, B, A, T1 \
	COMBINE B, A, T2 \
	OP B, A, B \
	VBLENDVPS T1, T2, B, B \
	VCMPPS $3, A, A, T1 \
	VBLENDVPS T1, A, B, B

// VV_MINMAX: out[i] = min or max(a[i], b[i]), 16 values per iteration.
#define VV_MINMAX(OP, COMBINE) \
	ARGS \
loop16: \
	CMPQ CX, $16 \
	JL loop8 \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS (DX), Y2 \
	VMOVUPS 32(DX), Y3 \
	GOMINMAX(OP, COMBINE, Y0, Y2, Y4, Y5) \
	GOMINMAX(OP, COMBINE, Y1, Y3, Y6, Y7) \
	VMOVUPS Y2, (DI) \
	VMOVUPS Y3, 32(DI) \
	ADDQ $64, SI \
	ADDQ $64, DX \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop16 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VMOVUPS (SI), Y0 \
	VMOVUPS (DX), Y2 \
	GOMINMAX(OP, COMBINE, Y0, Y2, Y4, Y5) \
	VMOVUPS Y2, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DX \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

// VS_MINMAX: out[i] = min or max(a[i], c), c = *b.
#define VS_MINMAX(OP, COMBINE) \
	ARGS \
	VBROADCASTSS (DX), Y15 \
loop16: \
	CMPQ CX, $16 \
	JL loop8 \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVAPS Y15, Y2 \
	VMOVAPS Y15, Y3 \
	GOMINMAX(OP, COMBINE, Y0, Y2, Y4, Y5) \
	GOMINMAX(OP, COMBINE, Y1, Y3, Y6, Y7) \
	VMOVUPS Y2, (DI) \
	VMOVUPS Y3, 32(DI) \
	ADDQ $64, SI \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop16 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VMOVUPS (SI), Y0 \
	VMOVAPS Y15, Y2 \
	GOMINMAX(OP, COMBINE, Y0, Y2, Y4, Y5) \
	VMOVUPS Y2, (DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

// Comparisons: out[i] (a bool byte) = a[i] PRED b[i] (CMPVV) or a[i] PRED
// *b (CMPVS), 32 values per iteration (n a multiple of 32). The four
// masks of 8 lanes are packed to bytes, put back in order by VPERMD and
// turned from -1 into 1.
DATA cmpOrder<>+0(SB)/4, $0
DATA cmpOrder<>+4(SB)/4, $4
DATA cmpOrder<>+8(SB)/4, $1
DATA cmpOrder<>+12(SB)/4, $5
DATA cmpOrder<>+16(SB)/4, $2
DATA cmpOrder<>+20(SB)/4, $6
DATA cmpOrder<>+24(SB)/4, $3
DATA cmpOrder<>+28(SB)/4, $7
GLOBL cmpOrder<>(SB), RODATA|NOPTR, $32

#define PACKSTORE \
	VPACKSSDW Y1, Y0, Y4 \
	VPACKSSDW Y3, Y2, Y5 \
	VPACKSSWB Y5, Y4, Y4 \
	VPERMD Y4, Y14, Y4 \
	VPABSB Y4, Y4 \
	VMOVDQU Y4, (DI)

#define CMPVV(PRED) \
	ARGS \
	VMOVDQU cmpOrder<>(SB), Y14 \
loop32: \
	CMPQ CX, $32 \
	JL done \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	VCMPPS PRED, (DX), Y0, Y0 \
	VCMPPS PRED, 32(DX), Y1, Y1 \
	VCMPPS PRED, 64(DX), Y2, Y2 \
	VCMPPS PRED, 96(DX), Y3, Y3 \
	PACKSTORE \
	ADDQ $128, SI \
	ADDQ $128, DX \
	ADDQ $32, DI \
	SUBQ $32, CX \
	JMP loop32 \
done: \
	VZEROUPPER \
	RET

#define CMPVS(PRED) \
	ARGS \
	VMOVDQU cmpOrder<>(SB), Y14 \
	VBROADCASTSS (DX), Y15 \
loop32: \
	CMPQ CX, $32 \
	JL done \
	VMOVUPS (SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	VCMPPS PRED, Y15, Y0, Y0 \
	VCMPPS PRED, Y15, Y1, Y1 \
	VCMPPS PRED, Y15, Y2, Y2 \
	VCMPPS PRED, Y15, Y3, Y3 \
	PACKSTORE \
	ADDQ $128, SI \
	ADDQ $32, DI \
	SUBQ $32, CX \
	JMP loop32 \
done: \
	VZEROUPPER \
	RET

// Predicates as Go's comparisons on floats: ordered and quiet, except !=
// (true when either is NaN).
#define EQ $0x00
#define NE $0x04
#define LT $0x11
#define LE $0x12
#define GT $0x1e
#define GE $0x1d

// Where: out[i] = c[i] ? t[i] : f[i] with c bool bytes; TLOAD and FLOAD
// load 8 values of t and f at offset OFF (or broadcast a single value
// kept in Y14 / Y15). Each condition byte is widened to a lane and
// shifted into the sign bit that VBLENDVPS reads. n a multiple of 8.
// Arguments: out, c, t, f, n.
#define WHERE(TLOAD0, TLOAD1, FLOAD0, FLOAD1, TSTEP, FSTEP) \
	MOVQ out+0(FP), DI \
	MOVQ c+8(FP), SI \
	MOVQ t+16(FP), DX \
	MOVQ f+24(FP), R8 \
	MOVQ n+32(FP), CX \
	VBROADCASTSS (DX), Y14 \
	VBROADCASTSS (R8), Y15 \
loop16: \
	CMPQ CX, $16 \
	JL loop8 \
	VPMOVZXBD (SI), Y0 \
	VPMOVZXBD 8(SI), Y1 \
	VPSLLD $31, Y0, Y0 \
	VPSLLD $31, Y1, Y1 \
	TLOAD0 \
	TLOAD1 \
	FLOAD0 \
	FLOAD1 \
	VBLENDVPS Y0, Y2, Y4, Y4 \
	VBLENDVPS Y1, Y3, Y5, Y5 \
	VMOVUPS Y4, (DI) \
	VMOVUPS Y5, 32(DI) \
	ADDQ $16, SI \
	ADDQ $(2*TSTEP), DX \
	ADDQ $(2*FSTEP), R8 \
	ADDQ $64, DI \
	SUBQ $16, CX \
	JMP loop16 \
loop8: \
	CMPQ CX, $8 \
	JL done \
	VPMOVZXBD (SI), Y0 \
	VPSLLD $31, Y0, Y0 \
	TLOAD0 \
	FLOAD0 \
	VBLENDVPS Y0, Y2, Y4, Y4 \
	VMOVUPS Y4, (DI) \
	ADDQ $8, SI \
	ADDQ $TSTEP, DX \
	ADDQ $FSTEP, R8 \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
done: \
	VZEROUPPER \
	RET

#define T0V VMOVUPS (DX), Y2
#define T1V VMOVUPS 32(DX), Y3
#define T0S VMOVAPS Y14, Y2
#define T1S VMOVAPS Y14, Y3
#define F0V VMOVUPS (R8), Y4
#define F1V VMOVUPS 32(R8), Y5
#define F0S VMOVAPS Y15, Y4
#define F1S VMOVAPS Y15, Y5

// func addVV(out, a, b unsafe.Pointer, n int)
TEXT ·addVV(SB), NOSPLIT, $0-32
	VV_PLAIN(VADDPS)

// func subVV(out, a, b unsafe.Pointer, n int)
TEXT ·subVV(SB), NOSPLIT, $0-32
	VV_PLAIN(VSUBPS)

// func mulVV(out, a, b unsafe.Pointer, n int)
TEXT ·mulVV(SB), NOSPLIT, $0-32
	VV_PLAIN(VMULPS)

// func divVV(out, a, b unsafe.Pointer, n int)
TEXT ·divVV(SB), NOSPLIT, $0-32
	VV_PLAIN(VDIVPS)

// func minVV(out, a, b unsafe.Pointer, n int)
TEXT ·minVV(SB), NOSPLIT, $0-32
	VV_MINMAX(VMINPS, VORPS)

// func maxVV(out, a, b unsafe.Pointer, n int)
TEXT ·maxVV(SB), NOSPLIT, $0-32
	VV_MINMAX(VMAXPS, VANDPS)

// func addVS(out, a, b unsafe.Pointer, n int)
TEXT ·addVS(SB), NOSPLIT, $0-32
	VS_PLAIN(VADDPS)

// func subVS(out, a, b unsafe.Pointer, n int)
TEXT ·subVS(SB), NOSPLIT, $0-32
	VS_PLAIN(VSUBPS)

// func mulVS(out, a, b unsafe.Pointer, n int)
TEXT ·mulVS(SB), NOSPLIT, $0-32
	VS_PLAIN(VMULPS)

// func divVS(out, a, b unsafe.Pointer, n int)
TEXT ·divVS(SB), NOSPLIT, $0-32
	VS_PLAIN(VDIVPS)

// func minVS(out, a, b unsafe.Pointer, n int)
TEXT ·minVS(SB), NOSPLIT, $0-32
	VS_MINMAX(VMINPS, VORPS)

// func maxVS(out, a, b unsafe.Pointer, n int)
TEXT ·maxVS(SB), NOSPLIT, $0-32
	VS_MINMAX(VMAXPS, VANDPS)

// func subSV(out, a, b unsafe.Pointer, n int)
TEXT ·subSV(SB), NOSPLIT, $0-32
	SV_PLAIN(VSUBPS)

// func divSV(out, a, b unsafe.Pointer, n int)
TEXT ·divSV(SB), NOSPLIT, $0-32
	SV_PLAIN(VDIVPS)

// func eqVV(out, a, b unsafe.Pointer, n int)
TEXT ·eqVV(SB), NOSPLIT, $0-32
	CMPVV(EQ)

// func neVV(out, a, b unsafe.Pointer, n int)
TEXT ·neVV(SB), NOSPLIT, $0-32
	CMPVV(NE)

// func ltVV(out, a, b unsafe.Pointer, n int)
TEXT ·ltVV(SB), NOSPLIT, $0-32
	CMPVV(LT)

// func leVV(out, a, b unsafe.Pointer, n int)
TEXT ·leVV(SB), NOSPLIT, $0-32
	CMPVV(LE)

// func gtVV(out, a, b unsafe.Pointer, n int)
TEXT ·gtVV(SB), NOSPLIT, $0-32
	CMPVV(GT)

// func geVV(out, a, b unsafe.Pointer, n int)
TEXT ·geVV(SB), NOSPLIT, $0-32
	CMPVV(GE)

// func eqVS(out, a, b unsafe.Pointer, n int)
TEXT ·eqVS(SB), NOSPLIT, $0-32
	CMPVS(EQ)

// func neVS(out, a, b unsafe.Pointer, n int)
TEXT ·neVS(SB), NOSPLIT, $0-32
	CMPVS(NE)

// func ltVS(out, a, b unsafe.Pointer, n int)
TEXT ·ltVS(SB), NOSPLIT, $0-32
	CMPVS(LT)

// func leVS(out, a, b unsafe.Pointer, n int)
TEXT ·leVS(SB), NOSPLIT, $0-32
	CMPVS(LE)

// func gtVS(out, a, b unsafe.Pointer, n int)
TEXT ·gtVS(SB), NOSPLIT, $0-32
	CMPVS(GT)

// func geVS(out, a, b unsafe.Pointer, n int)
TEXT ·geVS(SB), NOSPLIT, $0-32
	CMPVS(GE)

// func whereVV(out, c, t, f unsafe.Pointer, n int)
TEXT ·whereVV(SB), NOSPLIT, $0-40
	WHERE(T0V, T1V, F0V, F1V, 32, 32)

// func whereVS(out, c, t, f unsafe.Pointer, n int): f is one value.
TEXT ·whereVS(SB), NOSPLIT, $0-40
	WHERE(T0V, T1V, F0S, F1S, 32, 0)

// func whereSV(out, c, t, f unsafe.Pointer, n int): t is one value.
TEXT ·whereSV(SB), NOSPLIT, $0-40
	WHERE(T0S, T1S, F0V, F1V, 0, 32)

// func whereSS(out, c, t, f unsafe.Pointer, n int): t and f are one value each.
TEXT ·whereSS(SB), NOSPLIT, $0-40
	WHERE(T0S, T1S, F0S, F1S, 0, 0)
