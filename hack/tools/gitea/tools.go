//go:build tools

// Package tools pins code.gitea.io/gitea v1.24.6 (the version samples/gitea runs) for
// hack/build-tools.sh (gitea and environment-to-ini, which upstream's image runs at start);
// hack/images.sh packs them into the image the sample names.
// Nothing here is Kompox code.
package tools

import (
	_ "code.gitea.io/gitea"
	_ "code.gitea.io/gitea/contrib/environment-to-ini"
)
