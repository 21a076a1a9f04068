// Package fshook holds the file-system calls that package model/ckpt makes
// through a variable, so that the tests of model and model/ckpt can make
// them fail (a hard link refused across file systems) without a test hook
// in ckpt's API.
package fshook

import "os"

// Link is os.Link; tests replace it to exercise the copy fallback.
var Link = os.Link
