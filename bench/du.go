package main

import (
	"io/fs"
	"path/filepath"
)

// diskUsage is the space the files under dir take on disk (their
// allocated blocks, where the platform says: the WAL preallocates its
// segments, so this is more than their written bytes), and the sum of
// their sizes.
func diskUsage(dir string) (allocated, size int64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != dir {
				return nil // removed meanwhile
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		size += info.Size()
		allocated += allocatedBytes(info)
		return nil
	})
	return allocated, size, err
}
