//go:build !unix

package image

// tryLockFile needs flock(2); elsewhere the store cannot be locked.
func tryLockFile(path string, exclusive bool) (*fileLock, error) {
	return nil, errUnsupported
}
