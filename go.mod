module github.com/ccsandbox/sandbox

go 1.26.0
