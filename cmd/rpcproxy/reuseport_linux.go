package main

// SO_REUSEPORT on Linux (not exported by package syscall).
const soReusePort = 0xf
