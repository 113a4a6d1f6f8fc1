/* core.h -- everything libs/core offers: errors, config, .env, identifiers, logging, files. */
#ifndef MINDROOM_CORE_H
#define MINDROOM_CORE_H

#include "mindroom/err.h"
#include "mindroom/fsutil.h"
#include "mindroom/log.h"
#include "mindroom/ids.h"
#include "mindroom/dotenv.h"
#include "mindroom/config.h"

#endif
