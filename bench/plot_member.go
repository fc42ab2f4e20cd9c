//go:build benchmember

package main

import "errors"

// The member binary (see memberBinary) is built without the charts.
func writePlots(string, []Summary) ([]string, error) {
	return nil, errors.New("charts are drawn by the harness, not by a member process")
}
