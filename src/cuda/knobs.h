// Measurement knobs: environment variables that select a previous kernel variant or force a
// parameter, so that variants can be timed against each other inside one device call.
//
// Read them through a function-local static (`static const int v = knob_int(...)`), i.e. once
// per process: a getenv on every launch costs host time inside timed and graph-captured loops,
// and a value that could change between two calls of one process would make them disagree.
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

namespace ssmkit::cuda {

// The variable's integer value, or `fallback` when it is unset or empty.
inline int knob_int(const char* name, int fallback) {
    const char* e = std::getenv(name);
    return e && *e ? std::atoi(e) : fallback;
}

// Whether the variable is set to exactly `value`.
inline bool knob_is(const char* name, const char* value) {
    const char* e = std::getenv(name);
    return e && std::strcmp(e, value) == 0;
}

// The variable's value, "" when it is unset (empty or unset: the default choice).
inline std::string knob_str(const char* name) {
    const char* e = std::getenv(name);
    return e ? std::string(e) : std::string();
}

}  // namespace ssmkit::cuda
