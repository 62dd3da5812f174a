//go:build !linux

package main

// SO_REUSEPORT on the BSDs and macOS.
const soReusePort = 0x200
