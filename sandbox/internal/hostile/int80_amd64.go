package main

// int80 makes a system call through the 32-bit ABI (int 0x80).
func int80(trap, a1, a2, a3 uintptr) uintptr

const haveInt80 = true
