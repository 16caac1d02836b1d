package sandbox

// newOptions configures New.
type newOptions struct {
	storeOptions
}
