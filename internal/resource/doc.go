// Package resource manages resources: typed JSON values at paths such as
// f/bot/stripe, sealed at rest by package secrets.
//
// A resource's [Type] says which of its fields are secret and to which hosts
// its credential may be sent. The [Service] validates values against their
// type's schema, seals and stores them, masks secret fields when showing a
// resource, reveals them only on an audited request, and opens them for the
// broker at call time.
package resource
