#pragma once
// Moved to envd/event.h (services do not include envd/http/); kept for the HTTP sessions.
#include "envd/event.h"  // IWYU pragma: export
