/* SPDX-License-Identifier: MIT */
#include <wccl/errors.h>

const char *wccl_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
#define WCCL_ERROR_TEXT(name, value, text) \
	case value:                        \
		return text;
		WCCL_ERROR_LIST(WCCL_ERROR_TEXT)
#undef WCCL_ERROR_TEXT
	default:
		return "unknown error";
	}
}

const char *wccl_err_name(int err)
{
	switch (err) {
	case 0:
		return "WCCL_OK";
#define WCCL_ERROR_NAME(name, value, text) \
	case value:                        \
		return "WCCL_" #name;
		WCCL_ERROR_LIST(WCCL_ERROR_NAME)
#undef WCCL_ERROR_NAME
	default:
		return "WCCL_UNKNOWN";
	}
}
