/* SPDX-License-Identifier: MIT */
/*
 * "<file>.wccl-part": 64-byte header + bitmap of verified chunks. Updates
 * are ordered data-then-journal: fdatasync(data) happens before the bitmap
 * is written (see stream_journal_flush callers), so a set bit always means
 * the chunk's bytes are on disk.
 */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "include/wccl/errors.h"

#define JOURNAL_MAGIC "WCCLPRT1"

struct journal_hdr {
	char magic[8];
	uint32_t version;
	uint32_t chunk_bytes;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t nchunks;
	uint32_t file_crc;
	uint32_t flags;
	uint64_t verified;
	uint8_t reserved[8];
};
_Static_assert(sizeof(struct journal_hdr) == 64, "journal header");

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Open @path never through a symbolic link (ELOOP) and only if it is a
 * regular file (EINVAL): the receive directory may hold anything. */
static int journal_open_file(const char *path, int flags)
{
	struct stat sb;
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, &sb) ? -errno : 0;
	if (!rc && !S_ISREG(sb.st_mode))
		rc = -EINVAL;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int stream_journal_flush(struct stream_journal *j)
{
	struct journal_hdr h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, JOURNAL_MAGIC, 8);
	h.version = 1;
	h.chunk_bytes = j->chunk_bytes;
	h.size = j->size;
	h.mtime_ns = j->mtime_ns;
	h.nchunks = j->nchunks;
	h.file_crc = j->file_crc;
	h.flags = j->flags;
	h.verified = j->verified;
	int rc = pwrite_all(j->fd, &h, sizeof(h), 0);
	if (!rc)
		rc = pwrite_all(j->fd, j->bitmap, (j->nchunks + 7) / 8,
				sizeof(h));
	if (!rc && fdatasync(j->fd))
		rc = -errno;
	if (!rc)
		j->dirty = 0;
	return rc;
}

int stream_journal_open(struct stream_journal *j, const char *path,
			uint64_t size, int64_t mtime_ns, uint32_t chunk,
			int resume, int *resumed)
{
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	*resumed = 0;
	j->size = size;
	j->mtime_ns = mtime_ns;
	j->chunk_bytes = chunk;
	j->nchunks = (size + chunk - 1) / chunk;
	size_t bm = (j->nchunks + 7) / 8;
	j->bitmap = calloc(1, bm ? bm : 1);
	if (!j->bitmap)
		return WCCL_ENOMEM;
	j->fd = journal_open_file(path, O_RDWR | O_CREAT);
	if (j->fd < 0) {
		int rc = j->fd;
		j->fd = -1;
		free(j->bitmap);
		j->bitmap = NULL;
		return rc;
	}
	struct journal_hdr h;
	if (resume && pread(j->fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    !memcmp(h.magic, JOURNAL_MAGIC, 8) && h.version == 1 &&
	    h.size == size && h.mtime_ns == mtime_ns &&
	    h.chunk_bytes == chunk && h.nchunks == j->nchunks &&
	    pread(j->fd, j->bitmap, bm, sizeof(h)) == (ssize_t)bm) {
		for (uint64_t i = 0; i < j->nchunks; i++)
			j->verified += stream_journal_has(j, i);
		j->file_crc = h.file_crc;
		j->flags = h.flags;
		*resumed = 1;
		return 0;
	}
	if (ftruncate(j->fd, 0)) {
		int rc = -errno;
		stream_journal_close(j);
		return rc;
	}
	int rc = stream_journal_flush(j);
	if (rc)
		stream_journal_close(j);
	return rc;
}

uint32_t stream_journal_chunk(const char *path, uint64_t size,
			      int64_t mtime_ns)
{
	struct journal_hdr h;
	int fd = journal_open_file(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = pread(fd, &h, sizeof(h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h.magic, JOURNAL_MAGIC, 8) ||
	    h.version != 1 || h.size != size || h.mtime_ns != mtime_ns ||
	    h.chunk_bytes == 0 ||
	    h.nchunks != (size + h.chunk_bytes - 1) / h.chunk_bytes)
		return 0;
	return h.chunk_bytes;
}

void stream_journal_close(struct stream_journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	free(j->bitmap);
	j->bitmap = NULL;
}
