# A Rack app; its gems come from vendor/cache, which a deploy installs
# with `bundle install --local`.
require "webrick"

minitest = begin
  require "minitest"
  "minitest present"
rescue LoadError
  "minitest absent"
end

run lambda { |env|
  body = "Hello from Rack #{Rack.release} on WEBrick #{WEBrick::VERSION}, #{minitest}\n"
  [200, { "content-type" => "text/plain" }, [body]]
}
