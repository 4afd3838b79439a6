// Package arch holds tests of the codebase's shape: rules that reviews
// would otherwise have to remember, such as every package having a doc
// comment.
package arch
