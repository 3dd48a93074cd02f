/* cg_guard.c — the NaN/Inf guard's scan, `int fn(void **slots)`: 1 when
 * every element of the parameter and optimizer-state slots is finite.
 *
 * The trainer calls it after every step (runtime/train.c), so it reads all
 * the weights once a step. Compiled C at the runtime's portable width (SSE2,
 * 16-byte vectors) it took 25 us for 784-128-10's 101,770 floats: a quarter
 * of a batch-32 step. Generated here like the kernels, it loads vectors of
 * the JIT target's full width (zmm with AVX-512: 8 us) and follows
 * NNC_TARGET_FEATURES, so the tests reach every width.
 *
 * It works on the bits: (u & exponent) + the exponent's lowest bit carries
 * into the sign bit exactly when the exponent is all ones (NaN, Inf). OR-ing
 * those is one cheap independent operation per element, where a float sum
 * would be one long chain of dependent adds.
 */
#define NNC_WITH_LLVM
#include "nnc.h"

/* acc | ((u & exponent) + carry) over the count values of type t (an
 * integer, or a vector of lanes integers with exponent and carry splat to
 * it) from element start of base, in a loop of its own; returns the final
 * acc. */
static LLVMValueRef scan(Cg *c, LLVMTypeRef t, int lanes, LLVMValueRef base, int64_t start, int64_t count,
                         LLVMValueRef acc, LLVMValueRef exponent, LLVMValueRef carry) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    Loop l;
    LLVMValueRef i = cg_loop_open(c, &l, cg_i64(c, count));
    /* The accumulator's phi, beside the counter's at the head. */
    LLVMPositionBuilderBefore(c->b, LLVMGetFirstInstruction(l.head));
    LLVMValueRef a = LLVMBuildPhi(c->b, t, "acc");
    LLVMAddIncoming(a, &acc, &pre, 1);
    LLVMPositionBuilderAtEnd(c->b, l.body);

    LLVMTypeRef et = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetElementType(t) : t;
    LLVMValueRef off = LLVMBuildAdd(c->b, cg_i64(c, start), LLVMBuildMul(c->b, i, cg_i64(c, lanes), ""), "");
    LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, et, base, &off, 1, "");
    LLVMValueRef u = LLVMBuildLoad2(c->b, t, LLVMBuildBitCast(c->b, p, LLVMPointerType(t, 0), ""), "");
    LLVMSetAlignment(u, LLVMGetIntTypeWidth(et) / 8); /* the slot's elements' alignment, not the vector's */
    LLVMValueRef bits = LLVMBuildAdd(c->b, LLVMBuildAnd(c->b, u, exponent, ""), carry, "");
    LLVMValueRef next = LLVMBuildOr(c->b, a, bits, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(a, &next, &latch, 1);
    cg_loop_close(c, &l);
    return a;
}

void cg_add_guard(CgModule *owner, const char *name, const Graph *g) {
    CgModule *m = cg_module_chain(owner, name);
    Cg c = {.owner = owner, .g = g, .name = name};
    cg_use_module(&c, m);
    bool f64 = g->dtype == DT_F64;
    unsigned bits = f64 ? 64 : 32;
    LLVMTypeRef it = LLVMIntTypeInContext(m->ctx, bits), i32 = LLVMInt32TypeInContext(m->ctx);
    int lanes = jit_vector_bits() / (int)bits;
    LLVMTypeRef vt = LLVMVectorType(it, (unsigned)lanes);
    LLVMValueRef exponent = LLVMConstInt(it, f64 ? 0x7ff0000000000000ull : 0x7f800000u, false);
    LLVMValueRef carry = LLVMConstInt(it, f64 ? 0x0010000000000000ull : 0x00800000u, false);

    LLVMTypeRef param = LLVMPointerType(c.i8p, 0);
    c.fn = LLVMAddFunction(m->mod, name, LLVMFunctionType(i32, &param, 1, false));
    LLVMPositionBuilderAtEnd(c.b, LLVMAppendBasicBlockInContext(m->ctx, c.fn, "entry"));
    LLVMValueRef vacc = LLVMConstNull(vt), acc = LLVMConstInt(it, 0, false);
    LLVMValueRef vexponent = cg_splat(&c, exponent, lanes), vcarry = cg_splat(&c, carry, lanes);
    for (int s = 0; s < g->nslots; s++) {
        if (g->slots[s].kind != SLOT_PARAM && g->slots[s].kind != SLOT_STATE)
            continue;
        LLVMValueRef k = cg_i64(&c, s);
        LLVMValueRef p = LLVMBuildLoad2(c.b, c.i8p, LLVMBuildInBoundsGEP2(c.b, c.i8p, LLVMGetParam(c.fn, 0), &k, 1, ""),
                                        g->slots[s].name);
        LLVMValueRef base = LLVMBuildBitCast(c.b, p, LLVMPointerType(it, 0), "");
        int64_t n = shape_elems(&g->slots[s].shape), whole = n / lanes;
        vacc = scan(&c, vt, lanes, base, 0, whole, vacc, vexponent, vcarry);
        acc = scan(&c, it, 1, base, whole * lanes, n - whole * lanes, acc, exponent, carry);
    }
    acc = LLVMBuildOr(c.b, acc, cg_intrinsic(&c, "llvm.vector.reduce.or", vt, &vacc, 1), "");
    LLVMValueRef sign = LLVMConstInt(it, 1ull << (bits - 1), false);
    LLVMValueRef ok = LLVMBuildICmp(c.b, LLVMIntEQ, LLVMBuildAnd(c.b, acc, sign, ""), LLVMConstInt(it, 0, false), "");
    LLVMBuildRet(c.b, LLVMBuildZExt(c.b, ok, i32, ""));
    cg_verify_function(&c);
    LLVMDisposeBuilder(c.b);
}
