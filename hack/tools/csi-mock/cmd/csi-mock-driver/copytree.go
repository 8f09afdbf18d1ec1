package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// copyTree copies the tree at src into the existing directory dst as a disk snapshot keeps
// it: regular files, directories and symlinks, with their owners (when this process may set
// them), permission bits (setuid, setgid and sticky included) and modification times; dst
// itself takes src's. A database's files keep working in the copy: Postgres refuses a data
// directory that is not its user's with mode 0700, and reading its pg_control as another user
// fails (os.CopyFS made every file root's, 0644). Other file types (FIFOs, sockets, devices)
// fail the copy.
func copyTree(dst, src string) error {
	type dir struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dir
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if rel != "." {
				if err := os.Mkdir(to, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, dir{to, fi})
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
			return chown(to, fi)
		case mode.IsRegular():
			if err := copyFile(to, p); err != nil {
				return err
			}
			return keepMeta(to, fi)
		default:
			return fmt.Errorf("%s: cannot copy a file of type %v", p, mode.Type())
		}
	})
	if err != nil {
		return err
	}
	// Directories last, deepest first: writing an entry changes its directory's time.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := keepMeta(dirs[i].path, dirs[i].fi); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// chown gives p (not what a symlink points to) fi's owner, when this process may.
func chown(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(p, int(st.Uid), int(st.Gid))
}

// keepMeta gives a file or directory fi's owner, then its mode (a chown clears setuid and
// setgid), then its modification time.
func keepMeta(p string, fi fs.FileInfo) error {
	if err := chown(p, fi); err != nil {
		return err
	}
	if err := os.Chmod(p, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(p, fi.ModTime(), fi.ModTime())
}
