/* core.h -- everything libs/core offers: errors, clocks, base64, heap strings, config, .env,
 * identifiers, logging, files. */
#ifndef MINDROOM_CORE_H
#define MINDROOM_CORE_H

#include "mindroom/err.h"
#include "mindroom/clock.h"
#include "mindroom/b64.h"
#include "mindroom/str.h"
#include "mindroom/fsutil.h"
#include "mindroom/log.h"
#include "mindroom/ids.h"
#include "mindroom/dotenv.h"
#include "mindroom/config.h"

#endif
