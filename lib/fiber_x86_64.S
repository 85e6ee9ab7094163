/* SPDX-License-Identifier: MIT */
/* The fiber context switch for x86-64 (System V ABI).
 *
 * void tk_ctx_switch(struct tk_ctx *from, struct tk_ctx *to)
 *   rdi = from, rsi = to; struct tk_ctx is { void *sp; }.
 * Pushes what a callee must preserve (rbp, rbx, r12-r15, and the MXCSR and
 * x87 control words, whose modes are callee-saved too), stores rsp in
 * from->sp, switches to to->sp and pops the same frame from there. The
 * return address on the new stack is the caller of that stack's last
 * tk_ctx_switch, or tk_ctx_start for a fiber's first run. */
    .text
    .globl tk_ctx_switch
    .hidden tk_ctx_switch
    .type tk_ctx_switch, @function
    .p2align 4
tk_ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size tk_ctx_switch, .-tk_ctx_switch

/* A fiber's first instructions: the planted frame left the entry function
 * in r13 and its argument in r12; rsp is 16-byte aligned here. The entry
 * never returns (it switches away for the last time). */
    .globl tk_ctx_start
    .hidden tk_ctx_start
    .type tk_ctx_start, @function
    .p2align 4
tk_ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size tk_ctx_start, .-tk_ctx_start

    .section .note.GNU-stack, "", @progbits
