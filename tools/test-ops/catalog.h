// The cases test-ops runs: a correctness catalog and a set of representative perf shapes.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "common/harness.h"

namespace ssmkit::testops {

struct op_case {
    std::variant<harness::conv_case, harness::scan_case> c;

    std::string name() const;
    // "SSM_CONV", "SSM_CONV_BIAS_SILU" or "SSM_SCAN"
    std::string op() const;
    double bytes() const;
    double flops() const;  // 0 for the conv (counted by bytes alone)
    bool is_prefill_scan() const;
};

std::vector<op_case> test_catalog();
std::vector<op_case> perf_catalog();

// -o matches the op name, case-insensitively; -p is a regular expression searched in the name.
bool case_selected(const op_case& c, const std::string& op_filter, const std::string& regex);

}  // namespace ssmkit::testops
