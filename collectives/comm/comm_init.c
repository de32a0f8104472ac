/* SPDX-License-Identifier: MIT */
/* Communicator life cycle: init (by id or from a launcher's environment),
 * split, destroy, abort, and the error every rank can ask about. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include "comm_id.h"
#include "comm_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/params.h"
#include "core/sha256.h"
#include "core/sock.h"
#include "transport/provider.h"

int comm_fail(struct wccl_comm *c, int err, int rank, const char *fmt, ...)
{
	char msg[sizeof(c->async_msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	WCCL_WARN(WCCL_SUB_COLL, "rank %d: %s (%s)", c->rank, msg,
		  wccl_err_name(err));
	if (!c->async_error) {
		c->async_error = err;
		c->async_rank = rank;
		snprintf(c->async_msg, sizeof(c->async_msg), "%s", msg);
	}
	return err;
}

/* Take the root's relayed verdict as this communicator's error. */
static int adopt_bootstrap_error(struct wccl_comm *c, int rc)
{
	c->async_error = rc;
	c->async_rank = wccl_bootstrap_error_rank(c->bs);
	snprintf(c->async_msg, sizeof(c->async_msg), "%s",
		 wccl_bootstrap_error(c->bs));
	c->abort_sent = 1;
	return rc;
}

void comm_take_relayed_error(struct wccl_comm *c, int rc)
{
	adopt_bootstrap_error(c, rc);
	c->broken = 1;
	comm_flush_requests(c, rc);
}

#define SYMPTOM_GRACE_MS 300

void comm_announce_failure(struct wccl_comm *c)
{
	if (c->abort_sent || !c->async_error || !c->bs)
		return;
	if (!c->failure_is_sure) {
		uint64_t until = wccl_deadline_ns(SYMPTOM_GRACE_MS);
		while (wccl_now_ns() < until) {
			int rc = wccl_bootstrap_check_abort(c->bs);
			if (rc) {
				adopt_bootstrap_error(c, rc);
				return;
			}
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	c->abort_sent = 1;
	wccl_bootstrap_abort(c->bs, c->async_error, c->async_rank,
			     c->async_msg);
}

static void comm_free(struct wccl_comm *c)
{
	comm_flush_requests(c, WCCL_EABORTED);
	comm_ll_teardown(c);
	comm_close_contexts(c);
	comm_eager_free(c);
	comm_free_plans(c);
	if (c->bs)
		wccl_bootstrap_close(c->bs);
	if (c->root)
		wccl_bootstrap_root_stop(c->root);
	free(c->peers);
	free(c->region_of);
	free(c->host_of);
	free(c->sig);
	free(c->sig_got);
	free(c->hello);
	free(c->accepted);
	explicit_bzero(c->secret, sizeof(c->secret));
	free(c);
}

static int comm_init(struct wccl_comm **out, int nranks, int rank,
		     const struct comm_id *id, const struct wccl_config *cfg)
{
	/* The root this process runs for @id, if any, is ours from here:
	 * every failure below stops it, so it cannot outlive the attempt
	 * holding its port. */
	struct wccl_bootstrap_root *root = comm_id_adopt_root(id->root_addr);
	int64_t tmo = cfg && cfg->timeout_ms > 0
			      ? cfg->timeout_ms
			      : wccl_param_int(WCCL_PARAM_TIMEOUT_MS);
	int rc = 0;
	if (!out || nranks <= 0 || rank < 0 || rank >= nranks) {
		rc = WCCL_EINVAL;
	} else if (nranks > COMM_MAX_ACCEPT_BATCH) {
		WCCL_WARN(WCCL_SUB_COLL, "%d ranks: at most %d are supported",
			  nranks, COMM_MAX_ACCEPT_BATCH);
		rc = WCCL_ERANGE;
	} else if (tmo <= 0 || tmo > INT_MAX) {
		WCCL_WARN(WCCL_SUB_COLL,
			  "WCCL_TIMEOUT_MS=%lld: must be 1..%d ms",
			  (long long)tmo, INT_MAX);
		rc = WCCL_EINVAL;
	}
	struct wccl_comm *c = rc ? NULL : calloc(1, sizeof(*c));
	if (!c) {
		wccl_bootstrap_root_stop(root);
		return rc ? rc : WCCL_ENOMEM;
	}
	c->root = root;
	c->rank = rank;
	c->nranks = nranks;
	c->async_rank = -1;
	c->timeout_ms = (int)tmo;
	memcpy(c->secret, id->secret, sizeof(c->secret));
	const char *region = cfg && cfg->region ? cfg->region
						 : wccl_param_str(WCCL_PARAM_REGION);
	c->peers = calloc((size_t)nranks, sizeof(*c->peers));
	c->region_of = calloc((size_t)nranks, sizeof(int));
	c->host_of = calloc((size_t)nranks, sizeof(int));
	c->sig = calloc(2 * (size_t)nranks, COMM_SIG_LEN);
	c->sig_got = calloc((size_t)nranks, 1);
	if (!c->peers || !c->region_of || !c->host_of || !c->sig ||
	    !c->sig_got) {
		comm_free(c);
		return WCCL_ENOMEM;
	}
	char ip[64];
	rc = wccl_bootstrap_join(id->root_addr, id->secret, rank, nranks,
				     c->timeout_ms, &c->bs);
	if (!rc)
		rc = wccl_bootstrap_local_ip(c->bs, ip, sizeof(ip));
	if (!rc)
		rc = comm_open_contexts(c, ip);
	if (!rc)
		rc = comm_load_topology(c);
	if (!rc)
		rc = comm_exchange_info(c, region);
	if (!rc)
		rc = comm_connect_mesh(c);
	if (!rc)
		rc = comm_measure_links(c);
	if (!rc)
		comm_pace_cross_links(c);
	if (!rc)
		rc = comm_ll_setup(c);
	if (!rc)
		rc = comm_eager_setup(c);
	/* Everyone connected before anyone starts a collective. */
	if (!rc)
		rc = wccl_bootstrap_barrier(c->bs, c->timeout_ms);
	if (rc && !c->async_msg[0])
		comm_fail(c, rc, -1, "rank %d: set-up failed: %s", rank,
			  wccl_strerror(rc));
	if (rc) {
		if (c->bs && wccl_bootstrap_error(c->bs)[0])
			comm_fail(c, rc, wccl_bootstrap_error_rank(c->bs), "%s",
				  wccl_bootstrap_error(c->bs));
		WCCL_WARN(WCCL_SUB_COLL, "rank %d/%d: init failed: %s",
			  rank, nranks, c->async_msg[0] ? c->async_msg
						       : wccl_strerror(rc));
		if (c->bs && rc != WCCL_EAUTH)
			wccl_bootstrap_abort(c->bs, rc, c->async_rank,
					     c->async_msg);
		comm_free(c);
		return rc;
	}
	int local = 0;
	for (int r = 0; r < nranks; r++)
		local += c->host_of[r] == c->host_of[rank];
	c->oversubscribed = local > sysconf(_SC_NPROCESSORS_ONLN);
	/* Then wccl_wait's idle() yields on every empty pass: the providers
	 * need not too. With a core each, they keep their own habits (2
	 * ranks, uring, 2 and 32 MiB: 1.11x the time without them, 4
	 * launches, inside the noise but not risked). */
	for (int i = 0; i < c->nctx; i++)
		c->ctx[i].ctx->caller_yields = c->oversubscribed;
	WCCL_INFO(WCCL_SUB_COLL, "rank %d/%d ready: region '%s' (%d regions), "
				 "%d providers",
		  rank, nranks, region, c->nregions, c->nctx);
	*out = c;
	return 0;
}

int wccl_comm_init_rank(struct wccl_comm **comm, int nranks,
			const struct wccl_unique_id *id, int rank,
			const struct wccl_config *config)
{
	struct comm_id cid;
	if (!id || comm_id_unpack(id, &cid)) {
		WCCL_WARN(WCCL_SUB_COLL, "wccl_comm_init_rank: the unique id "
					 "is not one wccl_get_unique_id made");
		return WCCL_EINVAL;
	}
	return comm_init(comm, nranks, rank, &cid, config);
}

/*
 * The first of @names that is set, as a number in 0..INT_MAX, into *val
 * (-1 if none is set). A set variable that is not such a number is an
 * error naming it: a launcher's typo must not become another rank.
 */
static int env_int(const char *const *names, const char **which, long *val)
{
	*val = -1;
	for (; *names; names++) {
		const char *v = getenv(*names);
		if (!v || !*v)
			continue;
		char *end;
		errno = 0;
		long x = strtol(v, &end, 10);
		if (errno || *end || end == v || x < 0 || x > INT_MAX) {
			WCCL_WARN(WCCL_SUB_COLL,
				  "wccl_comm_init_env: %s='%s' is not a whole "
				  "number in 0..%d",
				  *names, v, INT_MAX);
			return WCCL_EINVAL;
		}
		*which = *names;
		*val = x;
		return 0;
	}
	return 0;
}

/* What the launcher calls this job, the same on every rank; NULL if none. */
static const char *launcher_job_id(void)
{
	static const char *const vars[] = { "SLURM_JOB_ID",
					    "OMPI_MCA_orte_hnp_uri",
					    "PMIX_NAMESPACE", "PMI_ID",
					    "TORCHELASTIC_RUN_ID", NULL };
	for (int i = 0; vars[i]; i++)
		if (getenv(vars[i]))
			return getenv(vars[i]);
	return NULL;
}

static uint64_t job_hash(void)
{
	const char *id = launcher_job_id();
	uint64_t h = 0xcbf29ce484222325ull;
	for (; id && *id; id++)
		h = (h ^ (unsigned char)*id) * 0x100000001b3ull;
	return h;
}

/* All @size ranks on this node, by the launcher's own count. */
static int single_node_job(long size)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_LOCAL_SIZE",
					    "LOCAL_WORLD_SIZE",
					    "MPI_LOCALNRANKS", NULL };
	if (!launcher_job_id())
		return 0;
	for (int i = 0; vars[i]; i++) {
		const char *v = getenv(vars[i]);
		if (v && strtol(v, NULL, 10) == size)
			return 1;
	}
	const char *nodes = getenv("SLURM_NNODES");
	return nodes && strtol(nodes, NULL, 10) == 1;
}

int wccl_comm_init_env(struct wccl_comm **comm)
{
	static const char *const rank_vars[] = { "RANK", "OMPI_COMM_WORLD_RANK",
						 "PMI_RANK", "SLURM_PROCID",
						 NULL };
	static const char *const size_vars[] = { "WORLD_SIZE",
						 "OMPI_COMM_WORLD_SIZE",
						 "PMI_SIZE", "SLURM_NTASKS",
						 NULL };
	const char *rank_var = "", *size_var = "";
	long rank, size;
	if (env_int(rank_vars, &rank_var, &rank) ||
	    env_int(size_vars, &size_var, &size))
		return WCCL_EINVAL;
	if (rank >= 0 && size >= 0 && rank >= size) {
		WCCL_WARN(WCCL_SUB_COLL,
			  "wccl_comm_init_env: %s=%ld is not below %s=%ld",
			  rank_var, rank, size_var, size);
		return WCCL_EINVAL;
	}
	if (rank < 0 || size <= 0) {
		WCCL_WARN(WCCL_SUB_COLL,
			  "wccl_comm_init_env: no launcher rank/size found "
			  "(RANK/WORLD_SIZE, OMPI_COMM_WORLD_RANK/SIZE, "
			  "PMI_RANK/SIZE or SLURM_PROCID/NTASKS)");
		return WCCL_EINVAL;
	}
	struct comm_id cid = { { 0 } };
	const char *root = wccl_param_str(WCCL_PARAM_ROOT_ADDR);
	const char *maddr = getenv("MASTER_ADDR");
	const char *mport = getenv("MASTER_PORT");
	if (*root) {
		struct sockaddr_storage ss;
		socklen_t sl;
		int bad = wccl_sock_parse(root, 0, &ss, &sl);
		if (!bad && ss.ss_family == AF_INET)
			bad = !((struct sockaddr_in *)&ss)->sin_port;
		else if (!bad)
			bad = !((struct sockaddr_in6 *)&ss)->sin6_port;
		if (bad) {
			WCCL_WARN(WCCL_SUB_COLL,
				  "wccl_comm_init_env: WCCL_ROOT_ADDR='%s' is "
				  "not host:port with a port in 1..65535",
				  root);
			return WCCL_EINVAL;
		}
		snprintf(cid.root_addr, sizeof(cid.root_addr), "%s", root);
	} else if (maddr && mport) {
		/* MASTER_PORT itself is torch's TCPStore: stay one above. */
		char *end;
		errno = 0;
		long p = strtol(mport, &end, 10);
		if (errno || *end || end == mport || p < 1 || p > 65534) {
			WCCL_WARN(WCCL_SUB_COLL,
				  "wccl_comm_init_env: MASTER_PORT='%s' is not "
				  "a port in 1..65534 (wccl uses MASTER_PORT "
				  "+ 1)",
				  mport);
			return WCCL_EINVAL;
		}
		snprintf(cid.root_addr, sizeof(cid.root_addr), "%s:%ld", maddr,
			 p + 1);
	} else if (single_node_job(size)) {
		/* mpirun/srun on one node: everyone can find rank 0 on
		 * loopback, at a port every rank derives from the job id. */
		snprintf(cid.root_addr, sizeof(cid.root_addr), "127.0.0.1:%u",
			 20000u + (unsigned)(job_hash() % 20000u));
	} else {
		WCCL_WARN(WCCL_SUB_COLL,
			  "wccl_comm_init_env: set WCCL_ROOT_ADDR=host:port "
			  "(or MASTER_ADDR and MASTER_PORT) on every rank");
		return WCCL_EINVAL;
	}
	const char *key = wccl_param_str(WCCL_PARAM_AUTH_KEY);
	char derived[256];
	if (!*key) {
		/* Not secret, but the same on every rank of one launch. */
		const char *job = launcher_job_id();
		snprintf(derived, sizeof(derived), "wccl-job:%s:%s",
			 job ? job : "", cid.root_addr);
		key = derived;
		if (rank == 0)
			WCCL_WARN(WCCL_SUB_BOOTSTRAP,
				  "WCCL_AUTH_KEY is not set: the bootstrap key "
				  "is derived from the job id and is not "
				  "secret; set WCCL_AUTH_KEY on every rank");
	}
	struct wccl_sha256 h;
	wccl_sha256_init(&h);
	wccl_sha256_update(&h, key, strlen(key));
	wccl_sha256_final(&h, cid.secret);
	if (rank == 0) {
		struct wccl_bootstrap_root *r;
		char addr[WCCL_BOOTSTRAP_ADDR_LEN];
		/* Bind the port on every interface: MASTER_ADDR may be a
		 * name that resolves to any of this host's addresses. */
		char bind[WCCL_BOOTSTRAP_ADDR_LEN];
		const char *colon = strrchr(cid.root_addr, ':');
		snprintf(bind, sizeof(bind), "0.0.0.0%s", colon ? colon : ":0");
		int rc = wccl_bootstrap_root_start(bind, cid.secret, &r, addr);
		if (rc)
			return rc;
		comm_id_keep_root(r, cid.root_addr);
	}
	WCCL_INFO(WCCL_SUB_COLL, "init from %s=%ld %s=%ld, root %s", rank_var,
		  rank, size_var, size, cid.root_addr);
	return comm_init(comm, (int)size, (int)rank, &cid, NULL);
}

int wccl_comm_destroy(struct wccl_comm *c)
{
	if (!c)
		return WCCL_EINVAL;
	int rc = 0;
	if (!c->aborted && !c->async_error) {
		/* Nobody tears down endpoints a peer still reads from. */
		rc = wccl_bootstrap_barrier(c->bs, c->timeout_ms);
	}
	comm_free(c);
	return rc;
}

int wccl_comm_abort(struct wccl_comm *c)
{
	if (!c)
		return WCCL_EINVAL;
	c->aborted = 1;
	comm_fail(c, WCCL_EABORTED, c->rank, "rank %d aborted the communicator",
		  c->rank);
	wccl_bootstrap_abort(c->bs, WCCL_EABORTED, c->rank, c->async_msg);
	comm_free(c);
	return 0;
}

int wccl_comm_get_async_error(struct wccl_comm *c, int *error, int *rank,
			      char *msg, size_t msg_len)
{
	if (!c || !error)
		return WCCL_EINVAL;
	if (!c->async_error && c->bs) {
		int rc = wccl_bootstrap_check_abort(c->bs);
		if (rc)
			adopt_bootstrap_error(c, rc);
	}
	*error = c->async_error;
	if (rank)
		*rank = c->async_rank;
	if (msg && msg_len)
		snprintf(msg, msg_len, "%s", c->async_msg);
	return 0;
}

int wccl_comm_rank(const struct wccl_comm *c)
{
	return c ? c->rank : -1;
}

int wccl_comm_size(const struct wccl_comm *c)
{
	return c ? c->nranks : -1;
}
