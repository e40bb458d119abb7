package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Latchkey API.
	GroupVersion = schema.GroupVersion{Group: "latchkey.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Latchkey types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Latchkey types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
