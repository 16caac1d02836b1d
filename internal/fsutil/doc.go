// Package fsutil holds small file system helpers the SDK's packages share.
package fsutil
