// Package version holds the build's version string.
package version

// Version is set at build time with -ldflags "-X .../internal/version.Version=v1.2.3".
var Version = "0.1.0-dev"
