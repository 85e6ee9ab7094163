/* SPDX-License-Identifier: MIT */
/* The fiber context switch for AArch64 (AAPCS64).
 *
 * void tk_ctx_switch(struct tk_ctx *from, struct tk_ctx *to)
 *   x0 = from, x1 = to; struct tk_ctx is { void *sp; }.
 * Saves what a callee must preserve (x19-x28, the frame pointer x29, the
 * link register x30, the low halves d8-d15 of v8-v15, and FPCR's modes) in
 * a 176-byte frame on the current stack, stores sp in from->sp, switches to
 * to->sp and restores the same frame from there; `ret` then goes to x30. */
    .text
    .globl tk_ctx_switch
    .hidden tk_ctx_switch
    .type tk_ctx_switch, %function
    .p2align 4
tk_ctx_switch:
    .cfi_startproc
    hint #34 /* bti c */
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    ret
    .cfi_endproc
    .size tk_ctx_switch, .-tk_ctx_switch

/* A fiber's first instructions: the planted frame left the entry function
 * in x20 and its argument in x19. The entry never returns. */
    .globl tk_ctx_start
    .hidden tk_ctx_start
    .type tk_ctx_start, %function
    .p2align 4
tk_ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    hint #34 /* bti c */
    mov x29, #0
    mov x0, x19
    blr x20
    brk #0
    .cfi_endproc
    .size tk_ctx_start, .-tk_ctx_start

    .section .note.GNU-stack, "", %progbits
