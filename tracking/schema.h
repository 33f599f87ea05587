// Versioned schema of the store. Migration i (1-based) takes user_version i-1 to i.
#pragma once

#include <vector>

namespace upcycle::tracking {

/// SQL scripts, one per schema version, applied in order inside one BEGIN IMMEDIATE transaction.
const std::vector<const char*>& schema_migrations();

}  // namespace upcycle::tracking
