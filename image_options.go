package sandbox

// pullOptions configures Pull.
type pullOptions struct {
	storeOptions
}

// loadOptions configures LoadOCILayout and LoadDockerArchive.
type loadOptions struct {
	storeOptions
}
