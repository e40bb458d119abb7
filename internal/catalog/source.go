package catalog

// Source hands out the catalog in effect. Get returns (nil, nil) when no
// catalog is configured, and an error when one is configured but cannot be
// used (its ConfigMap is missing or invalid, or not loaded yet): admission
// then fails closed for the rules that need it.
type Source interface {
	Get() (*Catalog, error)
}

// Static is a Source that always returns the same catalog (possibly nil).
type Static struct{ Catalog *Catalog }

// Get returns the catalog.
func (s Static) Get() (*Catalog, error) { return s.Catalog, nil }
