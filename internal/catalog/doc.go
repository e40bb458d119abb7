// Package catalog loads Latchkey's permission catalog: the scopes an
// installation knows, which of them are global (need no tenant), and the
// permissions of each. It is read from a YAML file (--permission-catalog)
// and/or a key of a ConfigMap in the operator's namespace
// (--permission-catalog-configmap), which package configmap watches and
// reloads live.
//
// Parsing is strict on purpose: a typo in a catalog would otherwise widen or
// narrow what every ApiClient may hold without anyone noticing. Unknown
// fields, duplicate keys, duplicate scopes or permissions, and permissions
// listed under another scope are errors that name where they are.
package catalog
